#!/usr/bin/env bash
# `parallax ingest` against a real `parallax serve`: multi-line events by a
# sourcetype's line breaker, timestamps extracted by the server's parser
# (checked through `parallax buckets`), a clear failure with no server.
set -u
P="$1"
tmp=$(mktemp -d)
pid=
trap '[[ -n $pid ]] && kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
fail=0
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$tmp/parallax.toml" <<TOML
[parallax]
data-dir = "$tmp/var"
[parallax.collector]
endpoint = "tcp://127.0.0.1:$port"
[parallax.http]
listen = "127.0.0.1:0"
[parallax.publisher]
endpoint = "tcp://127.0.0.1:0"
[parallax.search]
endpoint = "tcp://127.0.0.1:0"
[parallax.sourcetypes."app:java"]
time-format = "rfc3339"
line-breaker = '^\d{4}-\d{2}-\d{2}T'
TOML
cat > "$tmp/auth.log" <<'LOG'
2026-11-25T10:00:01Z web-01 sshd[2211]: Accepted publickey for deploy from 10.0.1.2 port 51122 ssh2
2026-11-25T10:00:02Z web-01 sudo: deploy : TTY=pts/0 ; PWD=/home/deploy ; USER=root ; COMMAND=/bin/ls

2026-11-25T10:00:03Z web-01 CRON[3001]: (root) CMD (run-parts /etc/cron.hourly)
LOG
cat > "$tmp/java.log" <<'LOG'
2026-11-25T09:59:58Z ERROR request failed
  at a.b.C(C.java:1)
  at d.e.F(F.java:2)
2026-11-25T10:00:05Z INFO ok user=alice
LOG
out=$("$P" ingest --config "$tmp/parallax.toml" --sourcetype app:java --timeout 3 "$tmp/java.log" 2>&1); rc=$?
[[ $rc == 1 && "$out" == *"is \`parallax serve\` running"* ]] \
  && echo "ok: no server: a clear failure" || { echo "FAIL: no server: rc=$rc $out"; fail=1; }

"$P" serve --config "$tmp/parallax.toml" 2> "$tmp/log" &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$tmp/log" && break; sleep 0.1; done

out=$("$P" ingest --config "$tmp/parallax.toml" --sourcetype os:auth "$tmp/auth.log" 2>&1); rc=$?
[[ $rc == 0 && "$out" == *"3 events from 1 files"* && "$out" == *"1 batches acknowledged"* ]] \
  && echo "ok: auth.log: 3 events, blank line skipped" || { echo "FAIL: auth.log: rc=$rc $out"; fail=1; }
out=$("$P" ingest --config "$tmp/parallax.toml" --sourcetype app:java "$tmp/java.log" 2>&1); rc=$?
[[ $rc == 0 && "$out" == *"2 events from 1 files"* ]] \
  && echo "ok: java.log: a stack trace is one event" || { echo "FAIL: java.log: rc=$rc $out"; fail=1; }

out=$("$P" buckets --config "$tmp/parallax.toml" --json 2>&1)
# One bucket (10:00-11:00 holds 10:00:01..10:00:05, 09:59:58 is the 09:00 one).
[[ "$out" == *'"min_time":"2026-11-25T09:59:58.000Z","max_time":"2026-11-25T09:59:58.000Z","events":1'* ]] \
  && echo "ok: the stack trace's time was extracted" || { echo "FAIL: 09:00 bucket: $out"; fail=1; }
[[ "$out" == *'"min_time":"2026-11-25T10:00:01.000Z","max_time":"2026-11-25T10:00:05.000Z","events":4'* ]] \
  && echo "ok: every other time was extracted" || { echo "FAIL: 10:00 bucket: $out"; fail=1; }

kill -TERM $pid; wait $pid; rc=$?; pid=
[[ $rc == 0 ]] && echo "ok: server stopped" || { echo "FAIL: server exit $rc"; fail=1; }
grep -q 'parser_times_total{reason="extracted"} 5' "$tmp/log" \
  && echo "ok: the parser counted 5 extracted times" || { echo "FAIL: parser counters:"; grep parser "$tmp/log"; fail=1; }
exit $fail
