#!/usr/bin/env bash
# The `parallax` command line: help, version, exit codes, config errors.
set -u
P="$1"
fail=0
check() { # check DESCRIPTION EXPECTED_RC ACTUAL_RC
  if [[ "$2" != "$3" ]]; then
    echo "FAIL: $1: exit code $3, expected $2"; fail=1
  else
    echo "ok: $1"
  fi
}
contains() { # contains DESCRIPTION HAYSTACK NEEDLE
  if [[ "$2" != *"$3"* ]]; then
    echo "FAIL: $1: output lacks '$3'"; echo "$2" | head -20; fail=1
  else
    echo "ok: $1"
  fi
}

out=$("$P" --help 2>&1); rc=$?
check "--help exits 0" 0 $rc
for cmd in serve decode config buckets rebuild-summaries bench; do
  contains "--help lists $cmd" "$out" "$cmd"
done

out=$("$P" --version 2>&1); rc=$?
check "--version exits 0" 0 $rc
contains "--version prints the version" "$out" "parallax 0."

out=$("$P" 2>&1); rc=$?
check "no subcommand is a usage error" 2 $rc
contains "no subcommand prints the help" "$out" "Subcommands:"

out=$("$P" frobnicate 2>&1); rc=$?
check "an unknown subcommand is a usage error" 2 $rc

out=$("$P" serve --bogus 2>&1); rc=$?
check "an unknown option is a usage error" 2 $rc
contains "an unknown option is named" "$out" "--bogus"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '[parallax]\nlog-level = "chatty"\n' > "$tmp/bad.toml"
out=$("$P" serve --config "$tmp/bad.toml" 2>&1); rc=$?
check "a bad config value exits 2" 2 $rc
contains "a bad config value names the key and line" "$out" "parallax.log-level: expected one of"
contains "a bad config value names the file position" "$out" "bad.toml:2:13"
[[ $(echo "$out" | wc -l) -eq 1 ]] && echo "ok: config error is one line" || { echo "FAIL: config error is not one line"; fail=1; }
[[ ! -e "$tmp/var" ]] && echo "ok: nothing created on a config error" || { echo "FAIL: data dir created"; fail=1; }

out=$("$P" config --set parallax.wire.max-fields=0 2>&1); rc=$?
check "an out-of-range override exits 2" 2 $rc
contains "an out-of-range override names the key" "$out" "parallax.wire.max-fields: expected an integer from 1"

out=$("$P" config --set parallax.log-level=debug 2>&1); rc=$?
check "config prints the effective configuration" 0 $rc
contains "config shows the override" "$out" 'log-level = "debug"'

out=$("$P" decode "$tmp/none" 2>&1); rc=$?
check "decode of a missing file fails" 1 $rc
printf '\xc1' > "$tmp/junk"
out=$("$P" decode "$tmp/junk" 2>&1); rc=$?
check "decode of junk fails" 1 $rc
contains "decode says why, with the offset" "$out" "not_msgpack at byte 0"

out=$("$P" bench codec --events 2000 --runs 1 --json 2>&1); rc=$?
check "bench codec runs" 0 $rc
contains "bench codec prints JSON" "$out" '"bench":"codec"'

out=$("$P" bench ingest --events 3000 --batch 500 --no-peer --data "$tmp/b" --json 2>&1); rc=$?
check "bench ingest runs end to end" 0 $rc
contains "bench ingest reports a rate" "$out" '"events_per_s":'

# bench paint itself runs in "browser: first_paint" (the same script); here
# what it says when it cannot run.
out=$("$P" bench paint --source "$tmp/no-tree" 2>&1); rc=$?
check "bench paint with a --source that is no source tree is a usage error" 2 $rc
contains "bench paint names the script it looked for" "$out" "$tmp/no-tree/bench/browser/first_paint.mjs"
mkdir -p "$tmp/tree/bench/browser" "$tmp/tree/web"
: > "$tmp/tree/bench/browser/first_paint.mjs"
out=$("$P" bench paint --source "$tmp/tree" 2>&1); rc=$?
check "bench paint without web/node_modules fails" 1 $rc
contains "bench paint says what to run" "$out" "scripts/setup.sh"
out=$("$P" bench paint --loads 0 2>&1); rc=$?
check "bench paint --loads 0 is a usage error" 2 $rc

out=$("$P" buckets --data "$tmp/b" 2>&1); rc=$?
check "buckets lists the store" 0 $rc
contains "buckets counts every event" "$out" "3000 events"

out=$("$P" buckets --data "$tmp/b" --json 2>&1); rc=$?
check "buckets --json succeeds" 0 $rc
contains "buckets --json prints objects" "$out" '"events":'

out=$("$P" rebuild-summaries --data "$tmp/b" 2>&1); rc=$?
check "rebuild-summaries succeeds" 0 $rc

out=$("$P" buckets --data "$tmp/nothing-here" 2>&1); rc=$?
check "buckets on a missing store fails" 1 $rc
contains "buckets names the missing store" "$out" "no Parallax store"
[[ ! -e "$tmp/nothing-here" ]] && echo "ok: buckets creates nothing" || { echo "FAIL: buckets created a directory"; fail=1; }

out=$("$P" buckets --data "$tmp/b" --set parallax.storage.bucket-span=30m 2>&1); rc=$?
check "a store opened with another bucket span is a config error" 2 $rc
contains "the span error names the key" "$out" "parallax.storage.bucket-span"

exit $fail
