#!/usr/bin/env bash
# Quick start, command 2: install what is missing, build with warnings as
# errors, and run the whole test suite (unit, sanitizer and integration
# labels). Extra arguments go to ctest (e.g. -L unit, -R wire).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh -DPARALLAX_WERROR=ON
cd "${PARALLAX_BUILD_DIR:-build}"
# A filter that selects nothing (a typo, or a label whose tests were not
# registered) is a failure, not a green run of zero tests.
ctest --output-on-failure --no-tests=error -j "${PARALLAX_JOBS:-2}" "$@"
