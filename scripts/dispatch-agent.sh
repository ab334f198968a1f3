#!/usr/bin/env bash
# A dispatcher for one agent run, wired to mc-ledger (docs/agents.md):
#   scripts/dispatch-agent.sh claude|codex TICKET PROMPT
# 1. dispatches a tmux runtime on TICKET (POST /v1/tickets/TICKET/dispatch);
# 2. starts the agent in a new tmux session with the runtime's environment: MC_LEDGER_SERVER,
#    MC_LEDGER_RUNTIME and, when the server has tokens, the runtime's own MC_LEDGER_TOKEN, so
#    its hooks (Claude Code's Stop/Notification/SessionEnd, Codex's notify) reach the ledger
#    as `mc-ledger hook …`;
# 3. waits for the agent to exit and harvests its output (`mc-ledger harvest`) with the
#    dispatcher's own token. Prints `runtime <id> session <name>` first and the harvest's answer
#    last; exits with the harvest's status.
# Environment:
#   MC_LEDGER_SERVER  the server (default http://127.0.0.1:7171)
#   MC_LEDGER_TOKEN   the dispatcher's token (orchestrator, write scope), if the server has tokens
#   MC_LEDGER_BIN     the mc-ledger binary (default: mc-ledger on PATH)
#   CLAUDE_BIN, CODEX_BIN  the agents' binaries (default: claude, codex on PATH)
#   TMUX_SOCKET_NAME  start the session on `tmux -L NAME` (the watcher's --tmux-socket-name)
#   AGENT_MODEL       the model to ask for (recorded on the dispatch; default: the agent's own)
#   MAX_BUDGET_USD    the most the run may spend (SPEC §16): sent as the dispatch's max_budget_usd;
#                     the reservation the ledger made (this, or a covering budget's default) is
#                     passed to Claude Code as --max-budget-usd (Codex has no such flag)
#   WORKDIR           the agent's working directory (default: the current one)
#   STATE_DIR         where the agent's output and settings go (default: $WORKDIR/.mc-ledger)
#   AGENT_ENV         names of further variables to hand to the agent (default: the Claude Code
#                     and Codex variables below that are set)
set -euo pipefail
agent="${1:?usage: dispatch-agent.sh claude|codex TICKET PROMPT}"
ticket="${2:?usage: dispatch-agent.sh claude|codex TICKET PROMPT}"
prompt="${3:?usage: dispatch-agent.sh claude|codex TICKET PROMPT}"
server="${MC_LEDGER_SERVER:-http://127.0.0.1:7171}"
mc="${MC_LEDGER_BIN:-mc-ledger}"
workdir="$(cd "${WORKDIR:-.}" && pwd)"
state="${STATE_DIR:-$workdir/.mc-ledger}"
mkdir -p "$state"
tmux_cmd=(tmux)
if [ -n "${TMUX_SOCKET_NAME:-}" ]; then tmux_cmd+=(-L "$TMUX_SOCKET_NAME"); fi
case "$agent" in
  claude | codex) ;;
  *) echo "dispatch-agent.sh: the agent is claude or codex, not $agent" >&2; exit 2 ;;
esac

# One JSON field of a JSON document on stdin (node is there: both agents need it).
field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s)[process.argv[1]];process.stdout.write(v==null?"":String(v))})' "$1"; }
auth=()
if [ -n "${MC_LEDGER_TOKEN:-}" ]; then auth=(-H "Authorization: Bearer $MC_LEDGER_TOKEN"); fi

session="mc-$ticket-$(date +%s%N | tail -c 9)"
model="${AGENT_MODEL:-}"
body=$(node -e 'const [key, agent, target, cwd, model, max] = process.argv.slice(1); console.log(JSON.stringify({dispatch_key: key, agent, transport: "tmux", tmux_target: target, cwd, model: model || undefined, max_budget_usd: max ? Number(max) : undefined, actor: {name: "dispatch-agent.sh", kind: "orchestrator"}}))' "$session" "$agent" "$session" "$workdir" "$model" "${MAX_BUDGET_USD:-}")
answer=$(curl -sS -X POST "${auth[@]}" -H 'Content-Type: application/json' --data "$body" \
  -w '\n%{http_code}' "$server/v1/tickets/$ticket/dispatch")
status="${answer##*$'\n'}"
answer="${answer%$'\n'*}"
if [ "$status" != 201 ]; then
  echo "dispatch-agent.sh: dispatch answered $status: $answer" >&2
  exit 1
fi
rt=$(printf '%s' "$answer" | field runtime_id)
# The reservation the ledger made (runtime.budgeted), if any: what the agent may spend.
reservation=$(printf '%s' "$answer" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const e=(JSON.parse(s).events||[]).find(e=>e.type==="runtime.budgeted");process.stdout.write(e?String(e.data.reservation_usd):"")})')
runtime_token=$(printf '%s' "$answer" | field runtime_token)
echo "runtime $rt session $session"

out="$state/$rt.out"
case "$agent" in
  claude)
    settings="$state/$rt.settings.json"
    hook="$mc hook claude"
    node -e 'const h=c=>[{hooks:[{type:"command",command:c}]}];console.log(JSON.stringify({hooks:{Stop:h(process.argv[1]),SubagentStop:h(process.argv[1]),Notification:h(process.argv[1]),SessionEnd:h(process.argv[1])}}))' "$hook" >"$settings"
    run=("${CLAUDE_BIN:-claude}" -p "$prompt" --output-format stream-json --verbose --settings "$settings")
    if [ -n "$model" ]; then run+=(--model "$model"); fi
    if [ -n "$reservation" ]; then run+=(--max-budget-usd "$reservation"); fi
    harvest=(--claude "$out")
    ;;
  codex)
    run=("${CODEX_BIN:-codex}" exec --json --skip-git-repo-check -c "notify=[\"$mc\",\"hook\",\"codex\"]")
    if [ -n "$model" ]; then run+=(-m "$model"); fi
    run+=("$prompt")
    harvest=(--codex "$out")
    ;;
esac

env_args=(-e "MC_LEDGER_SERVER=$server" -e "MC_LEDGER_RUNTIME=$rt")
# The hook spool (SPEC §17): the agent's hooks and this script's flush share it.
if [ -n "${MC_LEDGER_SPOOL:-}" ]; then env_args+=(-e "MC_LEDGER_SPOOL=$MC_LEDGER_SPOOL"); fi
if [ -n "$runtime_token" ]; then env_args+=(-e "MC_LEDGER_TOKEN=$runtime_token"); fi
for name in ${AGENT_ENV:-HOME PATH ANTHROPIC_BASE_URL ANTHROPIC_API_KEY CLAUDE_CONFIG_DIR \
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC CLAUDE_CODE_SESSIONEND_HOOKS_TIMEOUT_MS \
  DISABLE_AUTOUPDATER DISABLE_TELEMETRY CODEX_HOME OPENAI_API_KEY}; do
  if [ -n "${!name+x}" ]; then env_args+=(-e "$name=${!name}"); fi
done
# The agent's output goes to a file; the session ends with the agent and signals the waiter.
quoted=$(printf '%q ' "${run[@]}")
done_channel="done-$rt"
"${tmux_cmd[@]}" new-session -d -s "$session" -c "$workdir" "${env_args[@]}" \
  "$quoted </dev/null >$(printf '%q' "$out") 2>$(printf '%q' "$out.err"); ${tmux_cmd[*]} wait-for -S $done_channel"
"${tmux_cmd[@]}" wait-for "$done_channel"
# Hooks the server could not take in time (down, slow) are delivered before the harvest,
# while the runtime's token still holds; what is still left waits for the next flush.
"$mc" hook flush >&2 || echo "dispatch-agent.sh: some hooks are still spooled (mc-ledger hook flush)" >&2
"$mc" harvest --server "$server" --runtime "$rt" "${harvest[@]}" --actor dispatch-agent.sh --actor-kind orchestrator
