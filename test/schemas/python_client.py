#!/usr/bin/python3
"""An independent wire-format client, written from schemas/README.md alone.

It encodes batches with Debian's python3-msgpack, has the C++ decoder
(`parallax decode --json`) read them, and compares what comes back. It also
checks that the README's hex-dumped example is exactly what this client
encodes from the README's description of it, and that malformed frames are
rejected with the documented codes and offsets.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import msgpack

PARALLAX = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "..", "..", "schemas", "README.md")

failures = 0


def check(cond, what):
    global failures
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures += 1


def event(time, index, host, source, sourcetype, raw, fields):
    # README, "Event": an array of 7 elements in this order.
    return [time, index, host, source, sourcetype, raw, fields]


def batch(source_id, sequence, events, major=1, minor=0):
    # README, "Batch": an array of 5 elements.
    return [major, minor, source_id, sequence, events]


def decode(frame):
    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
        f.write(frame)
        path = f.name
    try:
        p = subprocess.run([PARALLAX, "decode", "--json", path],
                           capture_output=True, text=True)
    finally:
        os.unlink(path)
    return p.returncode, p.stdout, p.stderr


# 1. The README example, rebuilt from its description.
example = batch("agent-web-01", 42, [
    event(1795635510492000000, "os", "web-01", "/var/log/auth.log", "os:auth",
          "Accepted publickey for deploy from 10.0.1.2",
          {"user": "deploy", "pid": 2211}),
    event(1795635510000000000, "hv", "hv-03", "libvirt", "hv:libvirt",
          None, {"cpu_pct": 12.5, "running": True}),
])
frame = msgpack.packb(example)
text = open(README, encoding="utf-8").read()
block = re.search(r"<!-- example-hex-begin -->\n```\n(.*?)```", text, re.S).group(1)
readme_bytes = bytes.fromhex("".join(line[10:58] for line in block.splitlines()))
check(readme_bytes == frame, "README hex dump equals this client's encoding of the example")

rc, out, err = decode(frame)
check(rc == 0, "the C++ decoder accepts the example: " + err.strip())
lines = [json.loads(l) for l in out.splitlines()]
check(lines[0] == {"batch": {"version": "1.0", "source_id": "agent-web-01",
                             "sequence": 42, "events": 2}}, "batch header")
check(lines[1] == {"time": 1795635510492000000, "index": "os", "host": "web-01",
                   "source": "/var/log/auth.log", "sourcetype": "os:auth",
                   "raw": "Accepted publickey for deploy from 10.0.1.2",
                   "fields": {"user": "deploy", "pid": 2211}}, "first event")
check(lines[2]["raw"] is None and lines[2]["fields"] == {"cpu_pct": 12.5, "running": True},
      "second event: nil raw, float and boolean fields")

# 2. Every value type and representation the README allows.
fields = {"neg": -5, "big": 2**63 - 1, "small": -2**63, "u8": 200,
          "f": 0.1, "t": True, "fa": False, "s": "x" * 70000,
          "uni": "caf\u00e9 \u6f22\u5b57"}
b = batch("py-client", 2**64 - 1,
          [event(-1, "", "", "", "", "r" * 300, fields)], minor=0)
rc, out, err = decode(msgpack.packb(b))
check(rc == 0, "all value types decode: " + err.strip())
if rc == 0:
    lines = [json.loads(l) for l in out.splitlines()]
    check(lines[0]["batch"]["sequence"] == 2**64 - 1, "sequence up to 2^64-1")
    check(lines[1]["time"] == -1, "times before 1970 decode")
    check(lines[1]["fields"] == fields, "every field round-trips with its type")
single = msgpack.packb(batch("py", 1, [event(0, "", "", "", "", None, {"f": 0.5})]),
                       use_single_float=True)
rc, out, _ = decode(single)
check(rc == 0 and json.loads(out.splitlines()[1])["fields"]["f"] == 0.5, "float 32 accepted")

# A nil time means "unknown": the server works it out (README, "Event").
rc, out, _ = decode(msgpack.packb(batch("py", 1, [event(None, "", "", "", "", "Nov 25 20:18:30 x", {})])))
check(rc == 0 and json.loads(out.splitlines()[1])["time"] is None, "nil time accepted as unknown")

# 3. Malformed frames get the documented code and offset.
def rejected(frame, code, offset, what):
    rc, _, err = decode(frame)
    check(rc == 1 and f"{code} at byte {offset}" in err, f"{what}: {err.strip()}")

rejected(b"\xc1", "not_msgpack", 0, "the never-used byte")
# [1, 0, "s", 1, []] is 95 01 00 a1 73 01 90: cut before the event list.
rejected(msgpack.packb(batch("s", 1, []))[:-1], "truncated", 6, "truncated frame")
rejected(msgpack.packb(batch("s", 1, [], major=2)), "unknown_version", 1, "major version 2")
rejected(msgpack.packb([1, 1, "s", 1, [], "extra"]), "unknown_version", 0, "newer minor adds an element")
rejected(msgpack.packb(batch("s", 1, [event("now", "", "", "", "", None, {})])),
         "wrong_type", 8, "time as a string")
rejected(msgpack.packb(batch("s", 1, [event(0, "", "", "", "", None, {"k": None})])),
         "wrong_type", 17, "nil field value")  # 7 envelope, 7 event head, a1 6b
rejected(msgpack.packb(batch("s", 1, [event(0, "", "", "", "", None, {b"\xff": 1})])),
         "wrong_type", 15, "binary field name")
# A field name "a\xff" written by hand: envelope (7 bytes), event head to the
# map (8 bytes), a2 at 15, 'a' at 16, the bad byte at 17.
raw_name = b"\x95\x01\x00\xa1s\x01\x91\x97\x00\xa0\xa0\xa0\xa0\xc0\x81\xa2a\xff\x01"
rejected(raw_name, "invalid_utf8", 17, "field name that is not UTF-8")
rejected(msgpack.packb(batch("s", 1, [])) + b"\x00", "trailing_bytes", 7, "trailing byte")
rejected(b"\x95\x01\x00\xa1s\x01\xdd\xff\xff\xff\xff", "too_many_events", 6, "4 billion events")

sys.exit(1 if failures else 0)
