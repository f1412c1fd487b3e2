#!/bin/bash
# SIPp calls through `tandem start --workers W --no-media --no-auth` at RATE calls/s for SECONDS:
# SIPp UAS (test/fixtures/sipp/uas-record-route.xml) registered as `service`, SIPp UAC
# (test/fixtures/sipp/bench-uac.xml, 1 s calls). Prints calls ok / failed, SIPp retransmissions,
# p50 / p99 / max response time (every request, from -trace_rtt), CPU of the node's processes
# (primary + workers) per call, and the node's own counters. Run it under the CPU lock:
#
#   flock /tmp/tandem-cpu.lock bench/workers-sipp.sh 2 1000 30
#
# bench/signalling.bench.ts --workers 1,2 measures the same against Kamailio, in steps.
# usage: workers-sipp.sh WORKERS RATE SECONDS
set -u
W=$1; RATE=$2; SEC=$3
ROOT=$(cd "$(dirname "$0")/.." && pwd); cd "$ROOT"
D=${TMPDIR:-/tmp}/tandem-workers-sipp/w$W-r$RATE-$(date +%s); mkdir -p $D
SIPPORT=$((20000 + RANDOM % 10000)); UASPORT=$((30000 + RANDOM % 10000)); UACPORT=$((40000 + RANDOM % 10000))
TANDEM_FROM_SOURCE=1 node bin/tandem.mjs start --workers $W --sip udp:127.0.0.1:$SIPPORT --domain bench.test --no-auth --no-media --log-level error --admin 127.0.0.1:0 > $D/tandem.out 2>&1 &
TP=$!
for i in $(seq 1 100); do grep -q "tandem: listening" $D/tandem.out && break; sleep 0.2; done
ADMIN=$(grep -o "admin=http://[0-9.:]*" $D/tandem.out | sed 's/admin=//')
(cd $D && sipp -sf $ROOT/test/fixtures/sipp/uas-record-route.xml -i 127.0.0.1 -p $UASPORT -nostdin -bg > uas.out 2>&1)
UASPID=$(grep -o "[0-9]\+" $D/uas.out | head -1)
node --import tsx -e "import { registerContact } from '$ROOT/bench/lib/udp-sip.ts'; registerContact($SIPPORT, 'bench.test', 'service', $UASPORT).then((s) => console.log('register', s))"
PIDS=$(pgrep -P $TP | tr '\n' ' ')
t0=$(for p in $TP $PIDS; do awk '{print $14+$15}' /proc/$p/stat; done | paste -sd+ | bc)
(cd $D && sipp -sf $ROOT/test/fixtures/sipp/bench-uac.xml -s service -key domain bench.test -d 1000 127.0.0.1:$SIPPORT -i 127.0.0.1 -p $UACPORT -m $((RATE*SEC)) -r $RATE -l 100000 -nostdin -trace_stat -stf stats.csv -fd 1 -trace_rtt -rtt_freq 1 -trace_err -timeout $((SEC+30)) > uac.out 2>&1)
t1=$(for p in $TP $PIDS; do awk '{print $14+$15}' /proc/$p/stat; done | paste -sd+ | bc)
for p in $TP $PIDS; do echo "pid $p cpu_ticks_total $(awk '{print $14+$15}' /proc/$p/stat) $(grep ctxt /proc/$p/status | tr '\n' ' ')"; done
curl -s $ADMIN/metrics | grep -E "^tandem_(workers|signalling_requests_total|sip_.*retrans|.*dropped|.*steer)" > $D/metrics.txt
kill $TP; kill $UASPID 2>/dev/null; wait $TP 2>/dev/null
python3 - "$D" "$RATE" "$SEC" "$t0" "$t1" <<'PY'
import sys,csv,glob
d,rate,sec,t0,t1=sys.argv[1],int(sys.argv[2]),int(sys.argv[3]),int(sys.argv[4]),int(sys.argv[5])
rows=list(csv.reader(open(d+'/stats.csv'),delimiter=';'))
h=rows[0]; last=dict(zip(h,rows[-1]))
ok=int(last['SuccessfulCall(C)']); failed=int(last['FailedCall(C)']); retr=int(last['Retransmissions(C)'])
rt=[]
for f in glob.glob(d+'/*_rtt.csv'):
    for r in list(csv.reader(open(f),delimiter=';'))[1:]:
        try: rt.append(float(r[1]))
        except: pass
rt.sort()
p=lambda q: rt[min(len(rt)-1,int(q*len(rt)))] if rt else float('nan')
cpu_us=(t1-t0)*10000/ max(1,ok)
print(f"w={d.split('/')[-1]} ok={ok} failed={failed} retrans={retr} p50={p(.5):.2f}ms p99={p(.99):.2f}ms max={rt[-1] if rt else 0:.1f}ms cpu={(t1-t0)/100:.1f}s ({cpu_us:.0f} us/call)")
PY
cat $D/metrics.txt | grep -v "^#"
