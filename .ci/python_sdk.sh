#!/usr/bin/env bash
# Runs .ci/python_sdk_test.py with the official `mistralai` SDK from PyPI.
# Starts nothing: the proxy and the fake upstream must already run.
# Usage: .ci/python_sdk.sh PROXY_URL FAKE_UPSTREAM_URL
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-sdk"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -c 'import mistralai' 2>/dev/null || "$venv/bin/pip" install --quiet --disable-pip-version-check mistralai
exec "$venv/bin/python" "$here/python_sdk_test.py" "$1" "$2"
