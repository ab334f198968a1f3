#!/usr/bin/env bash
# API fuzzing: schemathesis against the server's own /openapi.json, every operation, with an
# admin token. Fails on any 5xx and on any response that breaks the published schema.
# Usage: scripts/schemathesis.sh [MAX_EXAMPLES]   (CI runs a bounded number per operation)
set -euo pipefail
cd "$(dirname "$0")/.."
max_examples="${1:-${MC_LEDGER_FUZZ_EXAMPLES:-25}}"
# CPython 3.11 can raise "SystemError: AST constructor recursion depth mismatch" when two threads
# build ASTs at once (cpython#106905); hypothesis parses lambda sources while describing filters,
# and that crash failed a CI run. So: one worker, and the newest interpreter this machine has.
pick_python() {
  local root candidate
  root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
  for candidate in "$root"/versions/3.13*/bin/python3 "$root"/versions/3.12*/bin/python3 \
    /usr/bin/python3.13 /usr/bin/python3.12 python3; do
    if "$candidate" -c 'import sys; assert sys.version_info >= (3, 9)' 2>/dev/null; then
      echo "$candidate"
      return
    fi
  done
  echo "schemathesis.sh: no python3 found" >&2
  exit 1
}
venv="target/schemathesis-venv"
if [ ! -x "$venv/bin/schemathesis" ]; then
  rm -rf "$venv"
  "$(pick_python)" -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==4.32.5"
fi
cargo build --quiet --bin mc-ledger
bin="target/debug/mc-ledger"
data="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$data"' EXIT
token="$("$bin" token create --scope admin --name schemathesis --data-dir "$data" 2>/dev/null)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$bin" demo --data-dir "$data" >/dev/null 2>&1 || true
"$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" >"$data/serve.out" 2>"$data/serve.err" &
server=$!
for _ in $(seq 100); do
  grep -q listening "$data/serve.out" 2>/dev/null && break
  sleep 0.1
done
"$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks all \
  --exclude-checks ignored_auth,positive_data_acceptance \
  --max-examples "$max_examples" \
  --seed "${MC_LEDGER_FUZZ_SEED:-20261122}" \
  --workers 1 \
  --request-timeout 20 \
  --suppress-health-check all \
  --no-color
