"""The `mta` command: one click group, one module per subcommand group."""
