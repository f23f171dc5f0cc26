#!/usr/bin/env bash
# Lint and type-check the package (after scripts/test.sh has made .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check src tests
.venv/bin/ruff format --check src tests
.venv/bin/mypy
