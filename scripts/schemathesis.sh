#!/usr/bin/env bash
# API fuzzing: schemathesis against the server's own /openapi.json, every operation, with an
# admin token. Fails on any 5xx and on any response that breaks the published schema.
# Usage: scripts/schemathesis.sh [MAX_EXAMPLES]   (CI runs a bounded number per operation)
set -euo pipefail
cd "$(dirname "$0")/.."
max_examples="${1:-${MC_LEDGER_FUZZ_EXAMPLES:-25}}"
venv="target/schemathesis-venv"
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
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
  --workers 2 \
  --request-timeout 20 \
  --suppress-health-check all \
  --no-color
