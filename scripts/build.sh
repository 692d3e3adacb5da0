#!/usr/bin/env bash
# Configures and builds Parallax into ./build (or $PARALLAX_BUILD_DIR).
# Extra arguments go to the CMake configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${PARALLAX_BUILD_DIR:-build}"
JOBS="${PARALLAX_JOBS:-2}" # CAF translation units need ~850 MB each
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" > /dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"
