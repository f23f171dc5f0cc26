"""A "library" that jobs_pkg imports, with a @que.job of its own: a module
beside the package whose name starts with the package's name, so that
`que worker tests.acceptance.jobs_pkg` must tell it from a submodule."""

from __future__ import annotations

import que


@que.job(name="Lib::Helper")
def helper(folder: str) -> None:
    """Never worked by the package's worker."""
