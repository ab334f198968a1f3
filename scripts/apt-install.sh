#!/usr/bin/env bash
# Installs Debian packages with apt-get (with sudo when not root), for the scripts that find a
# tool missing: scripts/apt-install.sh [APT-GET OPTION...] PACKAGE... Progress goes to stderr
# (callers' stdout may be read). Fails, naming the packages, where there is no apt-get.
set -euo pipefail
if ! command -v apt-get >/dev/null 2>&1; then
  echo "$* missing and there is no apt-get; install it and re-run" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "$@" >&2
