"""Without a pgbouncer executable the PgBouncer tests skip, except under CI, where they fail."""

import pytest

from .. import pgbouncer


@pytest.fixture
def no_pgbouncer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pgbouncer, "find_executable", lambda: None)


@pytest.mark.usefixtures("no_pgbouncer")
def test_skips_without_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install pgbouncer"):
        pgbouncer.required_executable()


@pytest.mark.usefixtures("no_pgbouncer")
def test_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"\$CI is set"):
        pgbouncer.required_executable()
