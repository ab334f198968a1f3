#!/usr/bin/env bash
# Makes sure node and npm are on PATH, installing Debian's nodejs and npm with apt-get when
# either is missing (with sudo when not root). Used by the npm installers
# (install-agents.sh, install-mcp-client.sh).
set -euo pipefail
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "scripts/ensure-node.sh: node/npm missing and there is no apt-get; install them and re-run" >&2
  exit 1
fi
$sudo apt-get update
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y nodejs npm
