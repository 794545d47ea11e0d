#!/usr/bin/env bash
# Install the project with its test, langchain and milvus extras into .venv and run the whole test suite.
# The real-browser test needs Debian's chromium; it is installed here when missing (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test,langchain,milvus]'
exec .venv/bin/python -m pytest "$@"
