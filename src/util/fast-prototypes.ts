/**
 * Keeps the built-in prototypes (String.prototype above all) in V8's fast mode.
 *
 * Why: V8 (11.3, Node 20) turns an object into a hash table of properties ("dictionary mode")
 * when a class starts to inherit from it; for String.prototype that is any `class X extends
 * String` in any loaded module, and ioredis has one (its RESP3 `VerbatimString`). From then on
 * optimized code cannot bind `s.indexOf`, `s.slice`, `s.startsWith` to the built-in at compile
 * time: string method calls in the SIP stack become generic property lookups. Measured: perf of
 * `tandem start` under SIPp's digest REGISTERs showed 7-9 % of its CPU in the generic lookup
 * (`Builtins_LoadIC`), 1 % once restored, and CPU per REGISTER fell 10-15 % (SIPp A/B); one
 * micro-benchmark's header scan ran 1.3 µs before and 3.7 µs after such a class was defined.
 *
 * V8 has no flag for this and no JavaScript operation turns a built-in prototype fast again (a
 * function's `prototype` assignment, `Object.create`, loads through it: all tried), so the
 * runtime's own `%ToFastProperties` is compiled once, with natives syntax switched on only for
 * that compilation. The prototypes are checked at start and every 30 s (a module loaded later
 * may define another such class); each restoration is counted in
 * `tandem_runtime_prototypes_restored_total{prototype}`. `TANDEM_FAST_PROTOTYPES=0` leaves them
 * as they are.
 */
import { setFlagsFromString } from 'node:v8';
import { counter } from './metrics.js';

const restored = counter('tandem_runtime_prototypes_restored_total', 'Built-in prototypes found in V8 dictionary mode (slow method lookups) and turned fast again', ['prototype']);

const typedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype) as object;

/** The prototypes the hot paths call methods on, by name. */
const PROTOTYPES: ReadonlyArray<[string, object]> = [
  ['String', String.prototype],
  ['Array', Array.prototype],
  ['Object', Object.prototype],
  ['Function', Function.prototype],
  ['Number', Number.prototype],
  ['Map', Map.prototype],
  ['Set', Set.prototype],
  ['Promise', Promise.prototype],
  ['RegExp', RegExp.prototype],
  ['TypedArray', typedArrayPrototype],
  ['Uint8Array', Uint8Array.prototype],
  ['Buffer', Buffer.prototype],
];

interface Natives {
  isFast(o: object): boolean;
  toFast(o: object): void;
}

let natives: Natives | null | undefined;

function loadNatives(): Natives | null {
  if (natives !== undefined) return natives;
  const alreadyOn = process.execArgv.includes('--allow-natives-syntax');
  try {
    if (!alreadyOn) setFlagsFromString('--allow-natives-syntax');
    natives = {
      isFast: new Function('o', 'return %HasFastProperties(o);') as Natives['isFast'],
      toFast: new Function('o', '%ToFastProperties(o);') as Natives['toFast'],
    };
  } catch {
    natives = null;
  } finally {
    if (!alreadyOn) setFlagsFromString('--no-allow-natives-syntax');
  }
  return natives;
}

/** Names of the prototypes in dictionary mode now; undefined when this runtime cannot tell. */
export function slowPrototypes(): string[] | undefined {
  const n = loadNatives();
  if (n === null) return undefined;
  return PROTOTYPES.filter(([, p]) => !n.isFast(p)).map(([name]) => name);
}

/** Turns the slow ones fast; returns their names (empty when none was, or when it cannot). */
export function restorePrototypes(): string[] {
  if (process.env['TANDEM_FAST_PROTOTYPES'] === '0') return [];
  const n = loadNatives();
  if (n === null) return [];
  const names: string[] = [];
  for (const [name, p] of PROTOTYPES) {
    if (n.isFast(p)) continue;
    n.toFast(p);
    restored.inc({ prototype: name });
    names.push(name);
  }
  return names;
}

let timer: NodeJS.Timeout | undefined;

/** Restores now and every 30 s after (idempotent; the timer does not keep the process alive). */
export function keepPrototypesFast(): void {
  restorePrototypes();
  if (timer !== undefined) return;
  timer = setInterval(restorePrototypes, 30_000);
  timer.unref();
}
