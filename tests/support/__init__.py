"""Helpers shared by test packages (importable as `support`: pytest's pythonpath has tests/)."""
