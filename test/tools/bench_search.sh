#!/usr/bin/env bash
# `parallax bench search` end to end on a small data set: it exits 0 only
# when every answer (Parallax's and the peers') matched the counts made
# while generating, and its JSON line carries every figure.
set -u
P="$1"
out=$("$P" bench search --events 20000 --json 2>&1); rc=$?
if [[ $rc -ne 0 ]]; then
  echo "FAIL: bench search exited $rc"; echo "$out"; exit 1
fi
echo "ok: bench search exits 0"
printf '%s\n' "$out" | tail -n 1 | python3 -c '
import json, sys
j = json.loads(sys.stdin.read())
fail = 0
keys = ["events", "buckets", "load_events_per_s", "query_peak_rss_bytes",
        "stats_buckets_from_tuples", "stats_events_read", "checks_passed"]
for q in ("rare", "and", "stats"):
    keys += [q + "_answer", q + "_parallax_median_ms", q + "_parallax_p99_ms",
             q + "_sqlite_median_ms", q + "_rg_median_ms", q + "_sqlite_ratio",
             q + "_rg_ratio"]
for k in keys:
    if k not in j:
        print("FAIL: no key", k); fail = 1
if fail:
    sys.exit(1)
print("ok: every key present")
def check(what, cond):
    global fail
    print(("ok: " if cond else "FAIL: ") + what)
    fail |= not cond
check("checks passed", j["checks_passed"] is True)
check("20000 events", j["events"] == 20000)
# 24 h of event time in 1 h buckets.
check("24 buckets", j["buckets"] == 24)
# 1 event in 2000 gets the rare token in a run this small: 10 of them.
check("10 rare hits", j["rare_answer"] == 10)
# 3 sourcetypes: hv:libvirt on 4 hosts, os:process and os:auth on 50 VMs.
check("104 groups", j["stats_answer"] == 104)
check("SQLite ran", j["rare_sqlite_median_ms"] is not None)
sys.exit(fail)
'
