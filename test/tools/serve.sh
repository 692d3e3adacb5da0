#!/usr/bin/env bash
# `parallax serve` starts, stores where it says, refuses a second server on
# the same data directory, and stops cleanly (exit 0) on SIGINT and SIGTERM.
set -u
P="$1"
tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
fail=0

wait_for() { # wait_for FILE PATTERN
  for _ in $(seq 100); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "FAIL: '$2' never appeared in $1:"; cat "$1"; return 1
}

for sig in TERM INT; do
  "$P" serve --data "$tmp/var" --set parallax.http.listen=127.0.0.1:0 --set parallax.publisher.endpoint=tcp://127.0.0.1:0 --set parallax.search.endpoint=tcp://127.0.0.1:0 > "$tmp/out" 2> "$tmp/log" &
  pid=$!
  wait_for "$tmp/log" "scheduler threads" || fail=1
  grep -q "storing in $tmp/var/store" "$tmp/log" || { echo "FAIL: no storage line"; fail=1; }
  if [[ $sig == TERM ]]; then
    # A second server on the same directory must refuse, naming the owner.
    out=$("$P" serve --data "$tmp/var" --set parallax.http.listen=127.0.0.1:0 --set parallax.publisher.endpoint=tcp://127.0.0.1:0 --set parallax.search.endpoint=tcp://127.0.0.1:0 2>&1); rc=$?
    [[ $rc == 1 && "$out" == *"in use by process $pid"* ]] \
      && echo "ok: second server refused" \
      || { echo "FAIL: second server: rc=$rc $out"; fail=1; }
  fi
  kill -$sig $pid
  wait $pid; rc=$?
  [[ $rc == 0 ]] && echo "ok: SIG$sig exits 0" || { echo "FAIL: SIG$sig exit $rc"; fail=1; }
  grep -q "stopped cleanly" "$tmp/log" || { echo "FAIL: no clean stop line"; cat "$tmp/log"; fail=1; }
  [[ -f "$tmp/var/store/data.mdb" ]] || { echo "FAIL: no store"; fail=1; }
done
exit $fail
