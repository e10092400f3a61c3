#!/usr/bin/env bash
# Runs .ci/langchain_test.py with `langchain-mistralai` from PyPI, offline from the
# Hugging Face hub (the embeddings tokenizer is built locally by the test).
# Starts nothing: the proxy and the fake upstream must already run.
# Usage: .ci/langchain.sh PROXY_URL FAKE_UPSTREAM_URL
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-langchain"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -c 'import langchain_mistralai, tokenizers' 2>/dev/null \
    || "$venv/bin/pip" install --quiet --disable-pip-version-check \
        'langchain-mistralai==1.1.6' 'tokenizers==0.23.3'
export HF_HUB_OFFLINE=1
exec "$venv/bin/python" "$here/langchain_test.py" "$1" "$2"
