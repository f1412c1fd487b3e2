#!/usr/bin/env bash
# `npm start`: runs Tandem on this machine with the sample users (examples/users.csv):
# SIP on udp+tcp 127.0.0.1:5060, digest auth on, media relayed by the in-process media node.
# Extra arguments are passed to `tandem start` (e.g. --sip udp:0.0.0.0:5060 --domain pbx.lan).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ]; then
  echo "tandem: installing dependencies (npm install)..."
  npm install --no-audit --no-fund
fi
cat <<'TXT'
tandem: starting. Point a softphone (baresip, Linphone, Zoiper, ...) at it:
  SIP server / registrar / outbound proxy : 127.0.0.1:5060 (UDP or TCP)
  domain / realm                          : 127.0.0.1
  accounts (examples/users.csv)           : alice / alice-secret, bob / bob-secret, 1000 / secret1000
  e.g. baresip account line: <sip:alice@127.0.0.1>;auth_pass=alice-secret
Register two accounts, call one from the other (sip:bob@127.0.0.1). Ctrl-C stops it.
TXT
# One process (the example config has a dispatcher set): its garbage-collection helpers are fixed
# when Node starts; give it the cores it does not use itself, 1 to 4 (src/util/gc-threads.ts).
gc_threads=$(( $(nproc) - 1 )); (( gc_threads < 1 )) && gc_threads=1; (( gc_threads > 4 )) && gc_threads=4
# --no-memory-reducer: at light load V8 takes the process for idle and runs three full collections
# in a row to shrink the heap (pauses up to 13 ms measured on the ng path); a server keeps its heap.
exec node --v8-pool-size="$gc_threads" --no-memory-reducer bin/tandem.mjs start --config examples/tandem.yaml --sip udp:127.0.0.1:5060 --sip tcp:127.0.0.1:5060 --users examples/users.csv "$@"
