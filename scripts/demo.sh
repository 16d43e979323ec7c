#!/usr/bin/env bash
# The local demo: deploy -> run -> stream -> scale against the embedded RunPod, headless.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/runpod-jupyter demo "$@"
