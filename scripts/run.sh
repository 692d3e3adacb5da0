#!/usr/bin/env bash
# Quick start, command 1: install what is missing, build, and run Parallax's
# main job on its embedded defaults (data under ./var). Stop with Ctrl-C.
# Arguments are passed to `parallax serve` (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
exec ./build/tools/parallax serve "$@"
