import math

import pytest

from que.backoff import Backoff, default_backoff


def test_default_is_error_count_to_the_fourth_plus_three() -> None:
    assert [default_backoff(n) for n in range(1, 6)] == [4, 19, 84, 259, 628]


def test_override_by_number_and_callable() -> None:
    policy = Backoff({"Fixed": 7, "Linear": lambda n: 10 * n})
    assert policy.delay("Fixed", 5) == 7.0
    assert policy.delay("Linear", 3) == 30.0
    assert policy.delay("Other", 2) == 19.0


@pytest.mark.parametrize("bad", [-1, math.nan, math.inf, "10", True, None])
def test_bad_fixed_interval_is_rejected_naming_the_type(bad: object) -> None:
    with pytest.raises(ValueError, match="'Mailer'"):
        Backoff({"Mailer": bad})  # type: ignore[dict-item]


def test_callable_giving_a_bad_delay_is_reported() -> None:
    policy = Backoff({"Odd": lambda n: -n})
    with pytest.raises(ValueError, match="'Odd' gave -2"):
        policy.delay("Odd", 2)
