"""Shared fixtures for the test suite."""

from __future__ import annotations

import pytest

from tests.support.host import real_kernel_unavailable

# The browser fixtures (server, browser, page) for every browser test module, and the
# throwaway PostgreSQL servers (postgres, pg_url, pg_server, store_url).
pytest_plugins = ["tests.support.browser", "tests.support.postgres"]


@pytest.fixture(scope="session")
def real_kernel() -> None:
    """Skip the test unless we are on Linux with a C compiler."""
    reason = real_kernel_unavailable()
    if reason is not None:
        pytest.skip(reason)
