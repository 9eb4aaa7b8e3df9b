"""Shared protocols between services: delivery (qmgr <-> agents) and status log lines."""
