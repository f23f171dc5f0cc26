"""``manage.py que_worker [OPTIONS]``: ``que worker`` with the ``@que.job``
functions of the installed apps' ``jobs`` modules, Django's connections
handled around each job. The options are ``que worker``'s."""

from ._que_command import QueCommand


class Command(QueCommand):
    help = "Work the jobs of the installed apps (options: que worker --help)"
    prefix = ("worker", "que.contrib.django.worker:work_map")
