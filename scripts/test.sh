#!/usr/bin/env bash
# Run the house checks and the whole test suite (sets up .venv and test dependencies first).
# Arguments go to pytest, e.g. `scripts/test.sh -m "not slow"` for the fast tier.
# The checks: ruff (lint), mypy (types), import-linter (the layer contracts in pyproject.toml).
# Three pytest runs: the jupyter_server handler tests need pytest-jupyter's plugin and event loop,
# and the browser tests (Playwright's sync API) must not share a session with that loop.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
py=.venv/bin/python
echo "checks: ruff, mypy, import-linter"
.venv/bin/ruff check runpod_jupyter tests benchmarks scripts
.venv/bin/mypy
.venv/bin/lint-imports
failed=0
ran=0
suite() {
  local rc=0
  "$py" -m pytest "$@" || rc=$?
  # 5 = no tests collected: an empty suite is a broken suite (unless a filter was given).
  if [ $rc -eq 0 ]; then ran=1
  elif [ $rc -eq 5 ] && [ $filtered = 1 ]; then :
  else echo "tests failed (pytest exit $rc): pytest $*" >&2; failed=$rc; fi
}
filtered=0; [ $# -gt 0 ] && filtered=1
suite tests --ignore=tests/server --ignore=tests/ui "$@"
suite -p pytest_jupyter.jupyter_server tests/server "$@"
suite tests/ui --screenshot only-on-failure --output test-results "$@"
[ $failed -eq 0 ] || exit $failed
[ $ran = 1 ] || { echo "no tests ran (pytest exit 5 in every run)" >&2; exit 5; }
