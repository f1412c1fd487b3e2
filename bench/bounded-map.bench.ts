/**
 * Cost of a bounded map's insert once it is full (the per-request cost of the nonce-count, route
 * token, accounting-claim and failure tables after hours of traffic): `Map` used as an LRU
 * (`delete(keys().next().value)`, which walks over the holes deleted entries leave) against
 * `GenerationalMap` (src/util/generational-map.ts).
 *
 *   node --import tsx bench/bounded-map.bench.ts
 */
import { GenerationalMap } from '../src/util/generational-map.js';

const OPS = 100_000;

function mapLru(max: number): number {
  const m = new Map<string, number>();
  for (let i = 0; i < max; i++) m.set(`k${i}`, i);
  const t0 = process.hrtime.bigint();
  for (let i = max; i < max + OPS; i++) {
    m.set(`k${i}`, i);
    if (m.size > max) m.delete(m.keys().next().value!);
  }
  return Number(process.hrtime.bigint() - t0) / OPS;
}

function generational(max: number): number {
  const m = new GenerationalMap<string, number>(max);
  for (let i = 0; i < max; i++) m.set(`k${i}`, i);
  const t0 = process.hrtime.bigint();
  for (let i = max; i < max + OPS; i++) m.set(`k${i}`, i);
  return Number(process.hrtime.bigint() - t0) / OPS;
}

console.log(`bounded map, insert into a full map (${OPS} inserts each), ns per insert:`);
for (const max of [1_000, 100_000, 200_000]) {
  console.log(`  ${String(max).padStart(7)} entries: Map as LRU ${mapLru(max).toFixed(0).padStart(7)}  GenerationalMap ${generational(max).toFixed(0).padStart(5)}`);
}
