// A yardstick for issue 15's CPU-per-REGISTER goal: what a REGISTER path built for the job costs
// in Node, next to Tandem's (which goes through the generic SIP layers) and Kamailio's. Not
// product code: one UDP socket, one process, an in-memory location table, no Path/outbound/
// wildcard/min-expires, no metrics. It does the work a digest registrar must do per exchange:
// nonce issued with a MAC and checked with its age, nonce-count replay check, MD5 response check
// with HA1 cached per user, Call-ID/CSeq ordering, Via received/rport, 401/200 built from the
// request's header lines. It uses Tandem's own MD5, HMAC and auth-param parser (from dist/, so
// build first: npx tsc -p tsconfig.build.json).
//
//   node --v8-pool-size=1 bench/lib/register-yardstick.mjs PORT USERS.csv   (user,password lines; realm bench.test)
//   sipp -sf test/fixtures/sipp/bench-register.xml -inf INJ.csv 127.0.0.1:PORT -r 2000 -m 60000 ...
//
// Measured 2026-12-03 (docs/benchmarks.md): 73-76 µs per REGISTER at 2,000/s, 69 at 4,000/s;
// Tandem 218-225, Kamailio 115 at 2,000/s in the same session.
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { HmacSha256 } from '../../dist/util/hmac-sha256.js';
import { md5Hex } from '../../dist/util/md5.js';
import { parseAuthParams, safeEqual } from '../../dist/sip/auth/digest.js';

const REALM = 'bench.test';
const users = new Map();
for (const l of readFileSync(process.argv[3], 'utf8').split('\n')) {
  const [u, p] = l.trim().split(',');
  if (u) users.set(u, { password: p, ha1: md5Hex(`${u}:${REALM}:${p}`) });
}
const mac = new HmacSha256('secret-key-0123456789');
const ncSeen = new Map();
const location = new Map();
const s = dgram.createSocket('udp4');

let seq = 0;
function nonceFor(now) {
  const ts = now.toString(16) + (seq++ & 0xffffff).toString(16).padStart(6, '0');
  return ts + mac.start().add(ts).digest().toString('hex', 0, 16);
}
function nonceOk(n, now) {
  const ts = n.slice(0, n.length - 32);
  if (!safeEqual(n.slice(-32), mac.start().add(ts).digest().toString('hex', 0, 16))) return false;
  return now - parseInt(ts.slice(0, -6), 16) < 30_000;
}

s.on('message', (m, r) => {
  const t = m.toString('latin1');
  const sl = t.indexOf('\r\n');
  if (!t.startsWith('REGISTER ')) return;
  const ruri = t.slice(9, t.lastIndexOf(' ', sl));
  // header lines: one pass
  let via, from, to, callId, cseq, contact, auth, expires;
  let pos = sl + 2;
  while (pos < t.length) {
    const e = t.indexOf('\r\n', pos);
    if (e === pos || e === -1) break;
    const colon = t.indexOf(':', pos);
    const name = t.slice(pos, colon).trim().toLowerCase();
    let vs = colon + 1; while (t.charCodeAt(vs) === 32) vs++;
    const value = t.slice(vs, e);
    switch (name) {
      case 'via': case 'v': via ??= value; break;
      case 'from': case 'f': from = value; break;
      case 'to': case 't': to = value; break;
      case 'call-id': case 'i': callId = value; break;
      case 'cseq': cseq = value; break;
      case 'contact': case 'm': contact = value; break;
      case 'authorization': auth = value; break;
      case 'expires': expires = value; break;
    }
    pos = e + 2;
  }
  if (!via || !from || !to || !callId || !cseq || !contact) return;
  const viaOut = via.replace(/;rport(?=;|$)/, `;rport=${r.port}`) + `;received=${r.address}`;
  const aorStart = to.indexOf('sip:');
  const aor = to.slice(aorStart, to.indexOf('>', aorStart));
  const user = aor.slice(4, aor.indexOf('@'));
  const now = Date.now();
  const head = `Via: ${viaOut}\r\nFrom: ${from}\r\nTo: ${to};tag=lean1\r\nCall-ID: ${callId}\r\nCSeq: ${cseq}\r\n`;
  let out;
  let verified = false;
  if (auth) {
    const p = parseAuthParams(auth);
    const u = users.get(user);
    if (p.ok && u) {
      const q = p.value.params;
      const nonce = q.get('nonce'), nc = q.get('nc'), cnonce = q.get('cnonce'), qop = q.get('qop'), uri = q.get('uri'), resp = q.get('response');
      if (nonce && nonceOk(nonce, now) && uri === ruri) {
        const last = ncSeen.get(nonce) ?? 0; const n = parseInt(nc ?? '0', 16);
        const ha2 = md5Hex(`REGISTER:${uri}`);
        const want = qop ? md5Hex(`${u.ha1}:${nonce}:${nc}:${cnonce}:${qop}:${ha2}`) : md5Hex(`${u.ha1}:${nonce}:${ha2}`);
        if (n > last && resp && safeEqual(resp, want)) { verified = true; ncSeen.set(nonce, n); if (ncSeen.size > 200000) ncSeen.clear(); }
      }
    }
  }
  if (!verified) {
    out = `SIP/2.0 401 Unauthorized\r\n${head}WWW-Authenticate: Digest realm="${REALM}", nonce="${nonceFor(now)}", qop="auth", algorithm=MD5\r\nServer: lean\r\nContent-Length: 0\r\n\r\n`;
  } else {
    const exp = Math.min(3600, Number(expires ?? 3600));
    const cs = parseInt(cseq, 10);
    const prev = location.get(aor);
    if (prev && prev.callId === callId && prev.cseq >= cs) out = `SIP/2.0 500 Out of order\r\n${head}Content-Length: 0\r\n\r\n`;
    else {
      const c = contact.startsWith('<') ? contact.slice(1, contact.indexOf('>')) : contact;
      location.set(aor, { contact: c, callId, cseq: cs, expiresAt: now + exp * 1000, source: `${r.address}:${r.port}` });
      out = `SIP/2.0 200 OK\r\n${head}Contact: <${c}>;expires=${exp}\r\nServer: lean\r\nContent-Length: 0\r\n\r\n`;
    }
  }
  s.send(Buffer.from(out, 'latin1'), r.port, r.address);
});
s.bind(Number(process.argv[2]), '127.0.0.1', () => console.log('ready', process.pid));
