#!/usr/bin/env bash
# Installs the Debian packages Tandem's tests need, when missing: openssl (TLS test certificates),
# g++ (the relay's native forwarder), redis-server (shared-state tests; its `--sentinel` mode runs
# the Sentinels), Kamailio, baresip and SIPp (package sip-tester; interop peers), rtpengine (the relay and ng benchmarks'
# reference).
# As root it uses apt; otherwise it prints what to install and exits non-zero.
set -euo pipefail
need=()
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# The relay's native forwarder is compiled on first use; without g++ the JavaScript one runs.
command -v g++ >/dev/null 2>&1 || need+=(g++)
# Redis and Sentinel for test/integration/state (each test starts its own on free ports).
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# keepalived (VRRP) moves the VIPs in the lab's network namespaces; its health check runs curl.
command -v keepalived >/dev/null 2>&1 || need+=(keepalived)
command -v curl >/dev/null 2>&1 || need+=(curl)
# Lab report plots (src/lab/report) render their text with DejaVu Sans.
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
# The dashboard's browser test (test/e2e) drives Debian's Chromium. Installed here, before the
# tests start, so that no test blocks its runner for the minutes a download takes.
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ "${TANDEM_INTEROP:-1}" = "1" ]; then
  command -v kamailio >/dev/null 2>&1 || need+=(kamailio)
  command -v rtpengine >/dev/null 2>&1 || need+=(rtpengine-daemon)
  command -v baresip >/dev/null 2>&1 || need+=(baresip-core)
  command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian starts these daemons on install; the tests run their own instances.
  for svc in kamailio rtpengine-daemon redis-server keepalived; do
    (command -v systemctl >/dev/null && systemctl stop "$svc" 2>/dev/null) || service "$svc" stop >/dev/null 2>&1 || true
  done
else
  echo "missing system packages: ${need[*]}" >&2
  echo "install them with: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
