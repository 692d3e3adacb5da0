#!/usr/bin/env bash
# Quick start, command 1: install what is missing, build, and run Parallax's
# main job on its embedded defaults: `parallax demo` -- the server (data
# under ./var, ingest on tcp://127.0.0.1:7400, HTTP on 127.0.0.1:7480) fed
# live by a simulated fleet with the scenarios of etc/scenarios/demo.toml,
# plus this machine's own agent when run as root. Stop with Ctrl-C.
# Arguments are passed to `parallax demo` (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
exec ./build/tools/parallax demo --scenario etc/scenarios/demo.toml "$@"
