"""que's pytest plugin, registered through the ``pytest11`` entry point.

It does nothing unless a project opts in, so that installing que never adds
fixtures to a test suite: set ``que_fixtures = true`` in the pytest
configuration (or run ``pytest -p que.pytest_fixtures``). The fixtures are in
``que.pytest_fixtures``; see docs/testing.md.
"""

from __future__ import annotations

import pytest

FIXTURES = "que.pytest_fixtures"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "que_fixtures",
        type="bool",
        default=False,
        help="give tests que's fixtures (que_db_url, que_client, que_inline, ...)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getini("que_fixtures") and not config.pluginmanager.has_plugin(FIXTURES):
        config.pluginmanager.import_plugin(FIXTURES)
