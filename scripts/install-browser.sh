#!/usr/bin/env bash
# Makes the web console's browser tests (tests/console/*.mjs, see tests/console/FINDINGS.md)
# ready to run:
#   scripts/install-browser.sh [DIR]       DIR defaults to target/browser; a relative DIR is taken
#                                          from the repository root
# - the browser is Debian's `chromium` package (/usr/bin/chromium), installed with apt-get when
#   missing: no browser is ever downloaded from anywhere else;
# - the driver is npm's `playwright-core` (the pinned version below) in DIR/node_modules, with a
#   package.json of its own in DIR so npm does not walk up into another project.
#   playwright-core itself downloads no browser; PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 makes sure.
#   The tests launch it with executablePath /usr/bin/chromium (tests/console/browser.mjs).
# nodejs and npm are installed with apt-get when missing. apt-get runs with sudo when not root.
# Nothing is done when chromium is there and DIR already holds that playwright-core version.
# Prints `chromium PATH` then `playwright PATH` (the playwright-core folder), one a line.
set -euo pipefail
cd "$(dirname "$0")/.."

PLAYWRIGHT_CORE_VERSION=1.65.1
CHROMIUM=/usr/bin/chromium

dir="${1:-target/browser}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
playwright="$dir/node_modules/playwright-core"

apt_install() { scripts/apt-install.sh "$@"; }

if [ ! -x "$CHROMIUM" ]; then
  # fonts-liberation: without any font the pages render their text as boxes.
  apt_install --no-install-recommends chromium fonts-liberation
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
fi

if [ ! -f "$playwright/package.json" ] ||
  [ "$(node -p "require('$playwright/package.json').version" 2>/dev/null)" != "$PLAYWRIGHT_CORE_VERSION" ]; then
  [ -f "$dir/package.json" ] || echo '{"name":"mc-ledger-browser","private":true}' >"$dir/package.json"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$dir" --no-audit --no-fund --save-exact \
    --loglevel=error "playwright-core@$PLAYWRIGHT_CORE_VERSION" >&2
fi

# Its launcher's /etc/chromium.d/dev-shm test complains on stderr where /dev/shm is mounted twice
# (as in this project's containers); harmless, so hidden here.
"$CHROMIUM" --version >&2 2>/dev/null
echo "chromium $CHROMIUM"
echo "playwright $playwright"
