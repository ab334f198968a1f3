#!/usr/bin/env bash
# Installs the real agent CLIs that tests drive against tests/agents/model-api.mjs (a scripted
# model API on loopback; see tests/agents/FINDINGS.md), with npm, into a project-local folder:
#   scripts/install-agents.sh [DIR]        DIR defaults to target/agents; a relative DIR is taken
#                                          from the repository root
# - Claude Code: npm @anthropic-ai/claude-code, whose native binary comes in the platform
#   package @anthropic-ai/claude-code-linux-x64 (an optional dependency, installed with it);
# - Codex: npm @openai/codex, whose native binary comes in @openai/codex-linux-x64.
# The versions are pinned below. Nothing is done when DIR already holds them; nodejs and npm are
# installed with apt-get when missing (with sudo when not root). Only the npm registry is used.
# Prints the two binaries' absolute paths, one a line: `claude PATH` then `codex PATH`.
set -euo pipefail
cd "$(dirname "$0")/.."

CLAUDE_CODE_VERSION=2.1.332
CODEX_VERSION=0.171.0

dir="${1:-target/agents}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
claude="$dir/node_modules/.bin/claude"
codex="$dir/node_modules/.bin/codex"

installed() { # installed PACKAGE VERSION: is that version in $dir?
  [ -f "$dir/node_modules/$1/package.json" ] &&
    [ "$(node -p "require('$dir/node_modules/$1/package.json').version" 2>/dev/null)" = "$2" ]
}

scripts/ensure-node.sh

# Claude Code's postinstall copies the native binary over bin/claude.exe; until it has, that file
# is a small stub, so a real (large) binary is part of "installed". Same for Codex's vendor binary.
if ! installed @anthropic-ai/claude-code "$CLAUDE_CODE_VERSION" ||
  ! installed @openai/codex "$CODEX_VERSION" ||
  ! "$claude" --version >/dev/null 2>&1 || ! "$codex" --version >/dev/null 2>&1; then
  # A package.json of its own keeps npm from walking up into another project.
  [ -f "$dir/package.json" ] || echo '{"name":"mc-ledger-agents","private":true}' >"$dir/package.json"
  # Claude Code declares node >= 22 but its native binary does not run on node: 20 is fine.
  npm install --prefix "$dir" --no-audit --no-fund --save-exact --engine-strict=false \
    --loglevel=error "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" "@openai/codex@$CODEX_VERSION" >&2
  # Should npm have skipped the postinstall (ignore-scripts, or a future allowScripts policy), run it.
  "$claude" --version >/dev/null 2>&1 || (cd "$dir/node_modules/@anthropic-ai/claude-code" && node install.cjs) >&2
  "$claude" --version >&2
  "$codex" --version >&2
fi

echo "claude $claude"
echo "codex $codex"
