"""Tests run in parallel by pytest-xdist (`pytest -n 2`, the README's test command): what a test
process must know to stay out of the other workers' way."""

import os

from localenv.cluster import port_free
from localenv.postgres import free_port

__all__ = ["preferred_port", "xdist_controller", "xdist_worker"]


def xdist_worker() -> bool:
    """This process is one of pytest-xdist's workers."""
    return "PYTEST_XDIST_WORKER" in os.environ


def xdist_controller(config) -> bool:
    """This process hands tests to xdist's workers and runs none itself."""
    return not xdist_worker() and bool(getattr(config.option, "numprocesses", None))


def preferred_port(port: int) -> int:
    """`port` if it is free, else a free one. In a worker always a free one: two workers that
    found 8081 free at the same moment would both take it."""
    return port if port_free(port) and not xdist_worker() else free_port()
