#!/usr/bin/env bash
# Create .venv and install the project (with its test extra when asked) when missing or stale.
# Usage: scripts/setup.sh [test]
set -euo pipefail
cd "$(dirname "$0")/.."
extra=${1:-}
python=${PYTHON:-python3}

if [ "$extra" = test ]; then
  # System packages the tests drive for real: a registry, an image inspector, a browser, and
  # node to build the Lab extension (js/) during the install.
  missing=()
  for pair in docker-registry:docker-registry skopeo:skopeo umoci:umoci buildah:buildah podman:podman runc:runc \
      chromium:chromium fonts-liberation:/usr/share/fonts/truetype/liberation nodejs:node; do
    pkg=${pair%%:*}; probe=${pair#*:}
    if [[ $probe == /* ]]; then [ -e "$probe" ] || missing+=("$pkg"); else command -v "$probe" >/dev/null || missing+=("$pkg"); fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      echo "setup: installing ${missing[*]} (apt)"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    elif command -v sudo >/dev/null; then
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
      echo "setup: missing system packages ${missing[*]}; tests that need them will be skipped" >&2
    fi
  fi
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
# The install builds js/ into the Lab extension, so a change there reinstalls too.
js_sources=$(cat js/package.json js/yarn.lock js/tsconfig.json js/src/* js/style/* 2>/dev/null | sha256sum)
want=$( { echo "$extra"; cat pyproject.toml; echo "$js_sources"; } | sha256sum | cut -d' ' -f1)
stamp=.venv/.runpod-jupyter-installed
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing runpod-jupyter${extra:+[$extra]} into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".${extra:+[$extra]}"
  echo "$want" > "$stamp"
fi
if [ "$extra" = test ] && [ ! -f .venv/share/jupyter/labextensions/runpod-jupyter/package.json ]; then
  echo "setup: the Lab extension was not built (js/ needs node >= 20.19 and the npm registry); the browser tests will fail" >&2
fi
if [ "$extra" = test ]; then
  # The runpod SDK 2.0 release the conformance tests run beside .venv's, in its own cached venv.
  .venv/bin/python scripts/sdk_env.py >/dev/null || echo "setup: the runpod SDK 2.0 environment could not be built; its conformance tests will fail" >&2
fi
