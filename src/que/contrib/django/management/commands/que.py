"""``manage.py que ARGS``: any ``que`` command (stats, jobs, dead, enqueue,
migrate --check, ...) against the database of ``QUE["DATABASE"]``."""

from ._que_command import QueCommand


class Command(QueCommand):
    help = "Run a que command against the Django database (manage.py que --help)"
