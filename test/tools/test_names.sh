#!/usr/bin/env bash
# Every doctest case runs under CTest as one entry whose filter is its name
# (doctest_discover_tests). A name with ';' is split there (CMake lists):
# two entries whose filters match no case, both "passing" with nothing run.
# This was so for 13 cases until 2026-11-27. Checked here: no name has ';',
# and each name, escaped as the discovery escapes it (commas), selects
# exactly one case; and CTest has as many entries running each binary's
# cases as the binary has cases (a name the discovery garbles, with '[' or
# '\\' say, would merge or split entries).
#
#   test_names.sh BUILD_DIR TEST_BINARY...
set -u
build="$1"
shift
fail=0
total=0
entries=$(ctest --test-dir "$build" --show-only=json-v1 | python3 -c '
import json, sys, collections
n = collections.Counter()
for t in json.load(sys.stdin)["tests"]:
    cmd = t.get("command") or []
    if any(a.startswith("--test-case=") for a in cmd[1:]):
        n[cmd[0]] += 1
for k, v in n.items():
    print(v, k)
')
for bin in "$@"; do
  before=$fail
  fail=0
  names=$("$bin" --list-test-cases --no-version 2>&1 | sed -e '/^\[doctest\]/d' -e '/^=====/d')
  n=0
  while IFS= read -r name; do
    [[ -z "$name" ]] && continue
    n=$((n + 1))
    if [[ "$name" == *";"* ]]; then
      echo "FAIL: $(basename "$bin"): '$name' has ';': CTest would split it and run nothing"
      fail=1
      continue
    fi
    count=$("$bin" "--test-case=${name//,/\\,}" --count --no-version 2>&1 \
      | sed -n 's/.*passing the current filters: \([0-9]*\).*/\1/p')
    if [[ "$count" != 1 ]]; then
      echo "FAIL: $(basename "$bin"): the filter for '$name' selects ${count:-?} cases, not 1"
      fail=1
    fi
  done <<< "$names"
  ctest_n=$(awk -v b="$bin" '$2 == b {print $1}' <<< "$entries")
  if [[ "${ctest_n:-0}" != "$n" ]]; then
    echo "FAIL: $(basename "$bin") has $n cases but ${ctest_n:-0} CTest entries run them"
    fail=1
  fi
  if [[ $n -eq 0 ]]; then
    echo "FAIL: $(basename "$bin") lists no test cases"
    fail=1
  fi
  total=$((total + n))
  [[ $fail -eq 0 ]] && echo "ok: $(basename "$bin"): $n case names, each its own CTest entry"
  [[ $before -ne 0 ]] && fail=1
done
[[ $fail -eq 0 ]] && echo "ok: $total case names checked"
exit $fail
