"""ConfigError: what every configuration reader raises for a wrong file or value."""


class ConfigError(Exception):
    """A configuration file or value is wrong; str() is one line naming file and line."""
