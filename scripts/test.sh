#!/usr/bin/env bash
# Quick start, command 2: install what is missing, build with warnings as
# errors, and run the whole test suite (unit, sanitizer and integration
# labels). Extra arguments go to ctest (e.g. -L unit, -R wire).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh -DPARALLAX_WERROR=ON
cd build
ctest --output-on-failure -j "${PARALLAX_JOBS:-2}" "$@"
