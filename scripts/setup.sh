#!/usr/bin/env bash
# Installs what Parallax needs from Debian 12's packages, skipping what is
# already installed. Idempotent: run it as often as you like.
#
#   scripts/setup.sh          # build + test dependencies
#
# Why each package is here (one line each, so a reviewer can argue with it):
#   build-essential cmake pkg-config ccache   toolchain; ccache because CAF TUs are slow
#   libcaf-dev            the actor framework of the design card (0.17.6)
#   libzmq3-dev           ZeroMQ (its C API, wrapped in pipeline/zmq.hpp)
#   libmsgpack-cxx-dev    MessagePack (wire format)
#   liblmdb-dev           the event store
#   libfmt-dev            formatting and logging
#   doctest-dev           unit tests
#   libtomlplusplus-dev   the config file is TOML (one file, typed values, line numbers in errors)
#   libcli11-dev          subcommands and a --help that helps
#   python3 python3-msgpack  a second, independent wire-format client in the tests
#   libre2-dev            user-supplied regexes (sedcmd, line breakers): linear time, no
#                         catastrophic backtracking
#   libzstd-dev           compresses stored event blocks (~5x on logs and metrics)
#   libsqlite3-dev        SQLite FTS5, the peer that `parallax bench ingest` measures against
#   docker-compose        validates docker-compose.yml in the tests (no engine needed)
#   libvirt-dev           the libvirt poller (read-only connections; the tests use its
#                         built-in test driver, no daemon)
#   nlohmann-json3-dev    parses collectd's write_http JSON (header-only)
#   libcpp-httplib-dev    the HTTP endpoint (collectd write_http); a compiled library,
#                         linked through its pkg-config flags
#   collectd-core         the real collectd (virt, processes and write_http plugins) for
#                         the integration test; no service is started by the package
#   libcurl4              write_http's HTTP client (collectd-core does not depend on it)
#   ripgrep               the grep-the-raw-text peer that `parallax bench search` measures against
#   nodejs npm            the web view's packages (`npm ci` in web/: uPlot, playwright-core)
#                         and the browser tests; npm counts as present when the `npm`
#                         command is (NodeSource's nodejs bundles it and conflicts with it)
#   chromium              the real headless browser of the browser tests (label `browser`)
#
# Then, when web/node_modules is missing or older than web/package-lock.json,
# `npm ci` in web/ (needs registry.npmjs.org), as the user running this script.
set -euo pipefail

packages=(
  build-essential cmake pkg-config ccache
  libcaf-dev libzmq3-dev libmsgpack-cxx-dev liblmdb-dev libfmt-dev
  doctest-dev libtomlplusplus-dev libcli11-dev libsqlite3-dev
  libzstd-dev libre2-dev
  python3 python3-msgpack docker-compose
  libvirt-dev nlohmann-json3-dev libcpp-httplib-dev collectd-core libcurl4
  ripgrep nodejs npm chromium
)

missing=()
for p in "${packages[@]}"; do
  if [[ $p == npm ]] && command -v npm > /dev/null; then continue; fi
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present"
else
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The web view's node packages, from the lock file (npm ci writes
# node_modules/.package-lock.json, so it is newer than the lock after a run).
web="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/web"
if [[ ! -f $web/node_modules/.package-lock.json
      || $web/package-lock.json -nt $web/node_modules/.package-lock.json ]]; then
  echo "setup: npm ci in $web"
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
else
  echo "setup: web/node_modules is current"
fi
