#!/usr/bin/env bash
# The published Standard Webhooks library (PyPI `standardwebhooks`) in a virtualenv at DIR
# (default target/webhooks-venv), for tests/notify.rs: a receiver that verifies every
# delivery's signature with it, not with our own code. Usage: scripts/install-standardwebhooks.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-target/webhooks-venv}"
if "$dir/bin/python" -c 'import standardwebhooks' 2>/dev/null; then
  exit 0
fi
rm -rf "$dir"
python3 -m venv "$dir"
"$dir/bin/pip" install --quiet "standardwebhooks==1.1.0"
"$dir/bin/python" -c 'import standardwebhooks; print("standardwebhooks", standardwebhooks.__name__, "ready")' >&2
