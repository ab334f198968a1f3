#!/usr/bin/env bash
# Makes sure node and npm are on PATH, installing Debian's nodejs and npm with apt-get when
# either is missing (with sudo when not root). Used by the npm installers
# (install-agents.sh, install-mcp-client.sh).
set -euo pipefail
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  exit 0
fi
"$(dirname "$0")/apt-install.sh" nodejs npm
