#!/usr/bin/env bash
# Install the project with its test tools into .venv and run the test suite.
# Uses QUE_TEST_DATABASE_URL when set, otherwise an embedded PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
exec .venv/bin/python -m pytest "$@"
