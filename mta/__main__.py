"""`python -m mta` runs the `mta` command."""

from mta.cli.main import main

main()
