#!/usr/bin/env bash
# Every test of the workspace. tests/watch.rs drives a real tmux server, so tmux is installed
# first when it is missing (apt-get; as root or through sudo). Arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v tmux >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "scripts/test.sh: tmux is missing and there is no apt-get; install tmux and re-run" >&2
    exit 1
  fi
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y tmux
fi
exec cargo test --workspace "$@"
