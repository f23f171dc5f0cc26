#!/usr/bin/env bash
# Lint and type-check the package (after scripts/test.sh has made .venv), and
# check that the generated sync modules match their asyncio sources.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python scripts/generate_sync.py --check
.venv/bin/ruff check src tests scripts
.venv/bin/ruff format --check src tests scripts
.venv/bin/mypy
