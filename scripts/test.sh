#!/usr/bin/env bash
# Run the whole test suite (sets up .venv and test dependencies first).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
rc=0
.venv/bin/python -m pytest tests "$@" || rc=$?
# 5 = no tests collected: an empty suite is a broken suite.
[ $rc -eq 0 ] || { echo "tests failed (pytest exit $rc)" >&2; exit $rc; }
