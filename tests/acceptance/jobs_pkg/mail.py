from __future__ import annotations

import os
from pathlib import Path

import que

# A library the package uses, registering a job of its own: the worker of
# this package must not work it.
from .. import jobs_pkg_lib  # noqa: F401


@que.job(name="Pkg::Mail")
def mail(folder: str, user_id: int) -> None:
    """Leaves a marker naming the user, the job and the process."""
    job = que.current_job()
    (Path(folder) / f"mail-{user_id}-{job.id}-{os.getpid()}").touch()
