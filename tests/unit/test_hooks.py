from __future__ import annotations

import pytest

from que.hooks import Hooks


def test_hooks_register_in_order_and_remove_from_every_kind() -> None:
    hooks = Hooks()

    def first(*args: object) -> None: ...
    def second(*args: object) -> None: ...

    assert hooks.before_job(first) is first  # usable as a decorator
    hooks.before_job(second)
    hooks.after_job(first)
    hooks.on_job_failure(first)
    assert hooks.of("before") == (first, second)
    hooks.remove(first)
    assert (hooks.of("before"), hooks.of("after"), hooks.of("failure")) == ((second,), (), ())
    hooks.clear()
    assert hooks.of("before") == ()


def test_a_hook_must_be_callable() -> None:
    with pytest.raises(TypeError, match="before hook must be callable, not 'nope'"):
        Hooks().before_job("nope")  # type: ignore[type-var]
