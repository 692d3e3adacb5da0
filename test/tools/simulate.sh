#!/usr/bin/env bash
# `parallax simulate` against a real `parallax serve`: every event the
# simulator reports sent is in the store (`parallax buckets --json` totals),
# per-sourcetype counts follow from the fleet and the scenario, a rerun is
# deduplicated, the file output is byte-identical for a seed, and a bad
# scenario is refused with exit 2 naming the line and key.
set -u
P="$1"
tmp=$(mktemp -d)
pid=
trap '[[ -n $pid ]] && kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fail=1; }
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
# Counts below compare what was sent with what is stored: without the
# correlator's own deltas and alerts.
[parallax.correlator]
enabled = false
TOML
# 12 VMs for 10 minutes: app-07's agent is down from 2m to 5m (18 samples
# missing), db-10 is cloned at 5m (30 more samples).
cat > "$tmp/scenario.toml" <<'TOML'
[[event]]
kind = "agent-outage"
vm = "app-07"
start = "2m"
duration = "3m"
[[event]]
kind = "clone"
vm = "db-10"
start = "5m"
TOML
cat > "$tmp/bad.toml" <<'TOML'
[[event]]
kind = "memory-leak"
vm = "db-02"
leak-rate = 5
TOML
start=$(( $(date +%s) / 20 * 20 - 600 ))

out=$("$P" simulate --scenario "$tmp/bad.toml" --out "$tmp/x" 2>&1); rc=$?
[[ $rc == 2 && "$out" == *"bad.toml:4:13: event[1].leak-rate: unknown key for kind memory-leak"* ]] \
  && ok "bad scenario: exit 2, line and key" || bad "bad scenario: rc=$rc $out"
out=$("$P" simulate --vms 2 --scenario "$tmp/scenario.toml" --out "$tmp/x" 2>&1); rc=$?
[[ $rc == 2 && "$out" == *'event[1].vm: no VM named "app-07"'* ]] \
  && ok "scenario naming a missing VM: exit 2" || bad "missing VM: rc=$rc $out"

"$P" simulate --seed 3 --vms 5 --duration 5m --start $start --out "$tmp/a.frames" > /dev/null &&
"$P" simulate --seed 3 --vms 5 --duration 5m --start $start --out "$tmp/b.frames" > /dev/null &&
"$P" simulate --seed 4 --vms 5 --duration 5m --start $start --out "$tmp/c.frames" > /dev/null
if cmp -s "$tmp/a.frames" "$tmp/b.frames" && ! cmp -s "$tmp/a.frames" "$tmp/c.frames"; then
  ok "same seed, same bytes; another seed, other bytes"
else
  bad "determinism of --out"
fi

"$P" serve --config "$tmp/parallax.toml" 2> "$tmp/log" &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$tmp/log" && break; sleep 0.1; done

run() {
  "$P" simulate --endpoint "tcp://127.0.0.1:$port" --duration 10m --seed 1 \
    --start $start --scenario "$tmp/scenario.toml" --truth "$tmp/T.json" 2>&1
}
out=$(run); rc=$?
sent=$(sed -n 's/^parallax simulate: \([0-9]*\) events in.*/\1/p' <<< "$out")
[[ $rc == 0 && -n "$sent" && "$out" == *" 0 rejected"* ]] \
  && ok "simulate sent $sent events, all acknowledged" || bad "simulate: rc=$rc $out"
# os:system: 12 VMs x 60 steps - 18 (outage) + 30 (clone) = 732.
# hv:libvirt:vm: kvm-01 and kvm-03 hold 8 VMs x 30 samples + the clone's 15 = 255.
# os:identity: 12 at start + app-07's agent restart + the clone = 14.
[[ "$out" == *"os:system=732"* ]] && ok "os:system count" || bad "os:system: $out"
[[ "$out" == *"hv:libvirt:vm=255"* ]] && ok "hv:libvirt:vm count" || bad "hv:libvirt:vm: $out"
[[ "$out" == *"os:identity=14"* ]] && ok "os:identity count" || bad "os:identity: $out"
[[ "$out" == *"hv:vsphere=120"* ]] && ok "hv:vsphere count (4 VMs x 30)" || bad "hv:vsphere: $out"
# os:net: 18 interfaces per step (12 NICs, the 3 db VMs' second NICs, the 3
# app VMs' docker0) x 60 - app-07's 2 x 18 (outage) + the clone's 2 x 30 = 1104.
[[ "$out" == *"os:net=1104"* ]] && ok "os:net count" || bad "os:net: $out"

total() {
  "$P" buckets --config "$tmp/parallax.toml" --json \
    | python3 -c 'import sys, json; print(sum(json.loads(l)["events"] for l in sys.stdin))'
}
stored=$(total)
[[ "$stored" == "$sent" ]] && ok "the store holds all $sent events" || bad "store holds $stored, sent $sent"

python3 - "$tmp/T.json" <<'PY' && ok "truth: outage and clone with windows" || bad "truth file"
import json, sys
t = json.load(open(sys.argv[1]))
kinds = {e["kind"]: e for e in t["events"]}
assert kinds["agent-outage"]["end_ns"] - kinds["agent-outage"]["start_ns"] == 180 * 10**9
assert "guest_silent" in kinds["agent-outage"]["signals"]
assert kinds["clone"]["params"]["clone"] == "db-10-clone"
vms = {v["vm"]: v for v in t["fleet"]}
assert vms["db-10-clone"]["macs"] == vms["db-10"]["macs"]
assert vms["db-10-clone"]["vm_uuid"] != vms["db-10"]["vm_uuid"]
assert len(t["fleet"]) == 13 and len(t["hosts"]) == 3
PY

out=$(run); rc=$?
stored2=$(total)
[[ $rc == 0 && "$stored2" == "$stored" ]] \
  && ok "a rerun is deduplicated (same run tag, same sequences)" || bad "rerun: rc=$rc stored $stored2 vs $stored: $out"

kill -TERM $pid; wait $pid; rc=$?; pid=
[[ $rc == 0 ]] && ok "server stopped" || bad "server exit $rc"
exit $fail
