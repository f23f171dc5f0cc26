"""Benchmark que as committed at a revision while the work tree keeps changing.

``--que-commit REV`` exports ``src/`` of REV into a temporary directory and
puts it first on the import path of the harness and of every child process.
Either way, ``compile_que`` writes its bytecode first, as installing it would.
"""

from __future__ import annotations

import compileall
import importlib.util
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Set for child processes and read by bench.machine: the commit benchmarked.
COMMIT_VARIABLE = "BENCH_QUE_COMMIT"


def use_revision(revision: str) -> str:
    """Import ``que`` from ``src/`` at ``revision``; return the commit's short hash."""
    commit = _git("rev-parse", "--short", f"{revision}^{{commit}}").decode().strip()
    archive = _git("archive", "--format=tar", commit, "src")
    target = Path(tempfile.mkdtemp(prefix=f"bench-que-{commit}-"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    src = str(target / "src")
    sys.path.insert(0, src)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    os.environ[COMMIT_VARIABLE] = commit
    return commit


def compile_que() -> Path:
    """Write the bytecode of the que the children will import; its directory.

    An installed wheel comes compiled, as every peer here is. A source tree
    with no bytecode (PYTHONDONTWRITEBYTECODE, or a fresh export) is compiled
    again in every process, and the compiler's memory then counts in each
    worker's peak RSS: about 2.5 MB for que's modules, paid by no peer.
    Existing bytecode is read even where writing it is turned off.
    """
    spec = importlib.util.find_spec("que")
    if spec is None or spec.origin is None:
        raise SystemExit("que is not importable: install it (pip install -e .) or use --que-commit")
    directory = Path(spec.origin).parent
    if not compileall.compile_dir(directory, quiet=1):
        raise SystemExit(f"could not compile {directory}")
    return directory


def _git(*args: str) -> bytes:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=True).stdout
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"git {' '.join(args)} failed: {exc.stderr.decode().strip()}") from exc
