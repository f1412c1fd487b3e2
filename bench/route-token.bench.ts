/**
 * Cost of the in-dialog trust check: signing the route token into a Record-Route (once per
 * dialog-creating request) and verifying it (once per in-dialog request; the worst case computes
 * two HMACs, when the caller's tag is the To-tag), against the proxy's per-call budget; and the
 * HMAC itself (util/hmac-sha256.ts, used by route tokens, flow tokens and digest nonces) against
 * node:crypto's `createHmac` on the same input.
 *
 *   node --import tsx bench/route-token.bench.ts
 */
import { createHmac } from 'node:crypto';
import { cpus } from 'node:os';
import { RouteToken } from '../src/signalling/proxy/route-token.js';
import { HmacSha256 } from '../src/util/hmac-sha256.js';

const N = 300_000;
const token = new RouteToken(Buffer.alloc(32, 7));

function perOp(fn: (i: number) => unknown): number {
  for (let i = 0; i < 20_000; i++) fn(i); // warm-up
  const t0 = process.cpuUsage();
  let sink = 0;
  for (let i = 0; i < N; i++) sink += fn(i) ? 1 : 0;
  const c = process.cpuUsage(t0);
  if (sink < 0) console.log(sink);
  return (c.user + c.system) / N;
}

console.log(`route-token bench: ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}, ${N} operations each`);
const signUs = perOp((i) => token.sign(`${i}-a84b4c76e66710@pc33.atlanta.example.com`, '1928301774', '|'));
const tk = token.sign('a84b4c76e66710@pc33.atlanta.example.com', '1928301774', '|');
const verifyFromUs = perOp(() => token.verify(tk, 'a84b4c76e66710@pc33.atlanta.example.com', '1928301774', 'b8f2', '|'));
const verifyToUs = perOp(() => token.verify(tk, 'a84b4c76e66710@pc33.atlanta.example.com', 'b8f2', '1928301774', '|'));
const forgedUs = perOp(() => token.verify('AAAAAAAAAAAAAAAA', 'a84b4c76e66710@pc33.atlanta.example.com', '1928301774', 'b8f2', '|'));
console.log(`  sign (Record-Route of an INVITE):           ${signUs.toFixed(2)} µs CPU`);
console.log(`  verify, caller's tag in From (1 HMAC):      ${verifyFromUs.toFixed(2)} µs CPU`);
console.log(`  verify, caller's tag in To (2 HMACs):       ${verifyToUs.toFixed(2)} µs CPU`);
console.log(`  verify a forged token (2 HMACs, refused):   ${forgedUs.toFixed(2)} µs CPU`);
console.log(`  per call (INVITE sign + ACK and BYE verify, worst): ${(signUs + 2 * verifyToUs).toFixed(1)} µs CPU`);

const key = Buffer.alloc(32, 7);
const hmac = new HmacSha256(key);
const input = 'a84b4c76e66710@pc33.atlanta.example.com\x001928301774\x00|';
const nodeUs = perOp(() => createHmac('sha256', key).update(input).digest());
const ownUs = perOp(() => hmac.start().add(input).digest());
console.log(`  HMAC-SHA256 of ${input.length} bytes: node:crypto createHmac ${nodeUs.toFixed(2)} µs, HmacSha256 ${ownUs.toFixed(2)} µs CPU`);
