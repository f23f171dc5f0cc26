"""What a supervised worker process does about a job past its timeout: a thread
cannot be stopped, so the process records the failure and ends itself; its
supervisor starts a new one, and the job's lock ends with the connection."""

from __future__ import annotations

import logging
import os

from . import sql
from ._cli_database import Database
from ._cli_logging import flush_logs
from ._cli_support import one_line
from ._timeouts import OverdueCallback
from .backoff import DEFAULT_BACKOFF
from .job import BaseJob
from .job_handle import error_params

# One logger name for everything the command logs, as users filter on it.
logger = logging.getLogger("que.cli")

# The exit code of a worker process that ended itself over a hung job.
EXIT_JOB_TIMEOUT = 75


def end_process_on_overdue(database: Database) -> OverdueCallback:
    """An on_overdue callback that records the hung job's failure (so it is retried
    after the backoff, not at once) and ends this process."""

    def end(job: BaseJob, ran: float, limit: float) -> None:
        message = (
            f"JobTimeoutError: job {job.type} id={job.id} ran {ran:.1f}s, past its timeout "
            f"of {limit:g}s; its worker process was ended"
        )
        try:
            with database.connector.connect() as conn:
                delay = DEFAULT_BACKOFF.delay_for_failure(job.type, job.error_count + 1)
                conn.execute(sql.SET_JOB_ERROR, error_params(job, message, delay))
        except Exception as exc:  # the process ends either way; the lock dies with it
            logger.error("could not record the timeout of job %s: %s", job.id, one_line(exc))
        logger.error(
            "job %s id=%s ran past its timeout of %gs: ending this worker process so that "
            "its jobs are worked again",
            job.type,
            job.id,
            limit,
        )
        flush_logs()
        os._exit(EXIT_JOB_TIMEOUT)

    return end
