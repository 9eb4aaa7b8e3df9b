"""mta: a Postfix-class mail transfer agent with compiled hot paths."""

__version__ = "0.1.0"
