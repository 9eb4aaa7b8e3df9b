"""Fixtures of the bounce tests: the qmgr tests' make_instance (a queue, qmgr and agents)."""

from qmgr.conftest import MakeInstance, make_instance

__all__ = ["MakeInstance", "make_instance"]
