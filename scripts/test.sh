#!/usr/bin/env bash
# Every test of the workspace. What the tests drive for real is made ready first:
# - tmux (tests/watch.rs), installed with apt-get when missing;
# - Debian's chromium and npm's playwright-core in target/browser (tests/console_browser.rs:
#   the console in headless Chromium; scripts/install-browser.sh);
# - Prometheus's promtool from Debian's prometheus package, unpacked into target/promtool
#   (tests/metrics.rs; scripts/install-promtool.sh);
# - PyPI's standardwebhooks in target/webhooks-venv (tests/notify.rs: a receiver verifies every
#   delivery's signature with the published library; scripts/install-standardwebhooks.sh);
# - npm's official MCP TypeScript SDK in target/mcp-client (tests/mcp.rs drives `mc-ledger mcp`
#   with its client; scripts/install-mcp-client.sh, which installs node and npm when missing);
# - with MC_LEDGER_SLOW_TESTS set, the real Claude Code and Codex CLIs from npm into
#   target/agents (tests/agents_real.rs, tests/agents_mcp.rs; scripts/install-agents.sh, which installs node and npm
#   when missing) that `mc-ledger run` starts, and Debian's fiu-utils
#   (libfiu's fiu-run and fiu-ctrl: tests/io_faults.rs injects I/O errors into the server);
# - PostgreSQL on 127.0.0.1:5432 with a `test` database (the PostgreSQL store's tests, each in a
#   schema of its own): the local cluster is started when it is down, and installed when there
#   is none. Another server can be named with MC_LEDGER_TEST_PG (a postgres:// URL).
# Arguments go to `cargo test`. The tested binary is built with the `bench` feature
# (tests/soak.rs runs `mc-ledger bench soak`; the default build leaves the harness out).
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
apt_install() { scripts/apt-install.sh "$@"; }
if ! command -v tmux >/dev/null 2>&1; then
  apt_install tmux
fi
if [ -z "${MC_LEDGER_TEST_PG:-}" ]; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql
  fi
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    for version in $(ls /etc/postgresql); do
      $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
  fi
  if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" postgres 2>/dev/null | grep -q 1; then
    su postgres -c "createdb test" 2>/dev/null || createdb -h 127.0.0.1 -U postgres test
  fi
fi
scripts/install-browser.sh target/browser >&2
scripts/install-promtool.sh target/promtool >&2
scripts/install-standardwebhooks.sh target/webhooks-venv >&2
scripts/install-mcp-client.sh target/mcp-client >&2
if [ -n "${MC_LEDGER_SLOW_TESTS:-}" ]; then
  if ! command -v fiu-run >/dev/null 2>&1 || ! command -v fiu-ctrl >/dev/null 2>&1; then
    apt_install fiu-utils
  fi
  scripts/install-agents.sh target/agents >&2
fi
exec cargo test --workspace --features bench "$@"
