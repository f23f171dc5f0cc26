#!/usr/bin/env bash
# The package declares Python 3.10 to 3.13: run the unit and integration
# suites on each interpreter other than the development one (3.11, which
# scripts/test.sh covers with every suite). Needs QUE_TEST_DATABASE_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${QUE_TEST_DATABASE_URL:?set QUE_TEST_DATABASE_URL to the server to test against}"
for version in 3.10 3.12 3.13; do
    python="$(ls -d /root/.pyenv/versions/"$version".*/bin/python3 2>/dev/null | tail -n 1 || true)"
    if [ -z "$python" ] && command -v "python$version" >/dev/null; then
        python="$(command -v "python$version")"
    fi
    if [ -z "$python" ]; then
        echo "Python $version is not installed: it is declared, so this is a failure" >&2
        exit 1
    fi
    venv=".venv-$version"
    if [ ! -x "$venv/bin/python" ]; then
        "$python" -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[test]'
    echo "== Python $version: unit and integration tests"
    "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/unit tests/integration
done
