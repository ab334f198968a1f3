#!/usr/bin/env bash
# Installs the official MCP TypeScript SDK (npm @modelcontextprotocol/sdk, pinned below) that
# tests/mcp.rs drives `mc-ledger mcp` with (tests/mcp/client.mjs), into a project-local folder:
#   scripts/install-mcp-client.sh [DIR]    DIR defaults to target/mcp-client; a relative DIR is
#                                          taken from the repository root
# Nothing is done when DIR already holds that version; nodejs and npm are installed with apt-get
# when missing (with sudo when not root). Only the npm registry is used. Prints `mcp-client DIR`.
set -euo pipefail
cd "$(dirname "$0")/.."

MCP_SDK_VERSION=1.32.2

dir="${1:-target/mcp-client}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

scripts/ensure-node.sh

package="$dir/node_modules/@modelcontextprotocol/sdk/package.json"
if [ ! -f "$package" ] || [ "$(node -p "require('$package').version" 2>/dev/null)" != "$MCP_SDK_VERSION" ]; then
  [ -f "$dir/package.json" ] || echo '{"private": true}' >"$dir/package.json"
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
    "@modelcontextprotocol/sdk@$MCP_SDK_VERSION" >&2
fi
echo "mcp-client $dir"
