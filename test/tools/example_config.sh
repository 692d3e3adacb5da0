#!/usr/bin/env bash
# etc/parallax.example.toml must be exactly what `parallax config --example`
# prints, so the documented defaults are the code's defaults.
set -u
P="$1"; EXAMPLE="$2"
if diff -u "$EXAMPLE" <("$P" config --example); then
  echo "ok: example config is current"
else
  echo "FAIL: regenerate with: parallax config --example > etc/parallax.example.toml"
  exit 1
fi
# And it loads as a config file.
"$P" config --config "$EXAMPLE" > /dev/null || { echo "FAIL: example does not load"; exit 1; }
