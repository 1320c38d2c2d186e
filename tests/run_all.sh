#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine, then run the whole suite (browser tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
# torch's CPU wheel first: an unpinned torch would pull a multi-GB CUDA build.
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[test]"
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
python -m ruff check core explorer tests bench
python -m pytest "$@"
