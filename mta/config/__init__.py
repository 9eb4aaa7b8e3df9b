"""Configuration: main.cf and master.cf in Postfix syntax, and the parameter table."""
