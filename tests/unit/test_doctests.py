"""The examples in the pure modules' docstrings are tests too."""

import doctest

import pytest

from que import (
    _cli_manage_output,
    _cli_stats,
    _cli_support,
    _client_base,
    _engine_base,
    _last_error,
    _manage_base,
    _pause_base,
    _timeouts,
    _unique,
    _work,
    backoff,
    connect,
    health,
)


@pytest.mark.parametrize(
    "module",
    [
        _cli_stats,
        _cli_support,
        _client_base,
        _engine_base,
        _last_error,
        _cli_manage_output,
        _manage_base,
        _pause_base,
        _timeouts,
        _unique,
        _work,
        backoff,
        connect,
        health,
    ],
)
def test_docstring_examples(module: object) -> None:
    failed, _ = doctest.testmod(module, raise_on_error=False)  # type: ignore[arg-type]
    assert failed == 0
