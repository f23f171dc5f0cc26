"""What the que management commands share: the ``que`` command's own
arguments, run against the database of ``QUE["DATABASE"]``."""

from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from .....cli import main
from ...client import conninfo


class QueCommand(BaseCommand):
    """Passes its arguments to ``que`` unparsed (``--help`` shows que's)."""

    prefix: tuple[str, ...] = ()

    def run_from_argv(self, argv: list[str]) -> None:
        sys.exit(self.run_que(argv[2:]))

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("que_args", nargs="*")

    def handle(self, *args: Any, **options: Any) -> None:
        code = self.run_que([*args, *options.get("que_args", [])])
        if code:
            raise CommandError(f"que exited with status {code}")

    def run_que(self, argv: list[str]) -> int:
        # The command's own child processes (--processes) read it too.
        os.environ.setdefault("QUE_DATABASE_URL", conninfo())
        return main([*self.prefix, *argv])
