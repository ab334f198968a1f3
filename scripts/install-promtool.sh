#!/usr/bin/env bash
# Prometheus's own `promtool` (Debian's `prometheus` package), for tests/metrics.rs: it checks
# a live /metrics scrape and docs/prometheus-rules.yml. The package is downloaded and unpacked
# into DIR (default target/promtool), not installed: installing it would start a Prometheus
# server on this machine. Usage: scripts/install-promtool.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-target/promtool}"
if [ -x "$dir/usr/bin/promtool" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-promtool.sh: no apt-get; put promtool on MC_LEDGER_PROMTOOL and re-run" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
mkdir -p "$dir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
chmod 777 "$tmp"
if ! (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1); then
  $sudo apt-get update >/dev/null
  (cd "$tmp" && apt-get download prometheus >/dev/null)
fi
dpkg-deb -x "$tmp"/prometheus_*.deb "$dir"
"$dir/usr/bin/promtool" --version >&2
