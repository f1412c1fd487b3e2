import type { Destination } from './destination.js';

/** Balancing algorithms a set (or a single dispatch call) can use. */
export const ALGORITHMS = ['round-robin', 'weighted', 'hash', 'random', 'priority', 'call-load'] as const;
export type Algorithm = (typeof ALGORITHMS)[number];

/** Which part of the request the `hash` algorithm keys on. */
export const HASH_KEYS = ['call-id', 'from-uri', 'to-uri', 'request-uri'] as const;
export type HashKey = (typeof HASH_KEYS)[number];

/** Per-set mutable state the stateful algorithms keep between calls. */
export interface AlgorithmState {
  /** Next index (into the set's full list) round-robin starts looking from. */
  rrCursor: number;
}

export interface PickContext {
  /** Hash input (already extracted from the request per the set's hash key). */
  key?: string;
  /** Uniform random in [0, 1); injectable for tests. */
  random: () => number;
}

/**
 * Chooses one destination among `candidates` (available, not yet tried for this call, in the
 * set's configured order), or undefined if there is none. `all` is the set's full list, used by
 * round-robin so the rotation is stable while destinations go down and up.
 */
export function pick(
  algorithm: Algorithm,
  all: readonly Destination[],
  candidates: readonly Destination[],
  state: AlgorithmState,
  ctx: PickContext,
): Destination | undefined {
  if (candidates.length === 0) return undefined;
  switch (algorithm) {
    case 'round-robin':
      return roundRobin(all, candidates, state);
    case 'weighted':
      return smoothWeighted(candidates);
    case 'hash':
      return rendezvous(candidates, ctx.key ?? '');
    case 'random':
      return weightedRandom(candidates, ctx.random);
    case 'priority':
      return byPriority(candidates);
    case 'call-load':
      return leastLoaded(all, candidates, state);
  }
}

/** Next candidate at or after the cursor in the set's order; the cursor moves past it. */
function roundRobin(all: readonly Destination[], candidates: readonly Destination[], state: AlgorithmState): Destination | undefined {
  const n = all.length;
  const allowed = new Set(candidates);
  for (let i = 0; i < n; i++) {
    const idx = (state.rrCursor + i) % n;
    const d = all[idx]!;
    if (allowed.has(d)) {
      state.rrCursor = (idx + 1) % n;
      return d;
    }
  }
  return undefined;
}

/**
 * Smooth weighted round-robin: every pick adds each candidate's weight to its running weight,
 * takes the largest (first in order on a tie) and subtracts the total from it. Deterministic;
 * over any window of sum(weights) picks each destination gets exactly its weight, interleaved
 * (weights 5,1,1 give a a b a c a a, not a a a a a b c).
 */
function smoothWeighted(candidates: readonly Destination[]): Destination | undefined {
  let total = 0;
  let best: Destination | undefined;
  for (const d of candidates) {
    const w = Math.max(0, d.weight);
    d.currentWeight += w;
    total += w;
    if (w > 0 && (!best || d.currentWeight > best.currentWeight)) best = d;
  }
  if (!best) return candidates[0];
  best.currentWeight -= total;
  return best;
}

/**
 * Rendezvous (highest random weight) hashing: each destination scores hash(key, uri) and the
 * highest wins. The same key maps to the same destination while it is up; when it goes down only
 * its keys move (to their second-best score) and they come back when it returns.
 */
function rendezvous(candidates: readonly Destination[], key: string): Destination | undefined {
  let best: Destination | undefined;
  let bestScore = -1;
  for (const d of candidates) {
    const s = hashScore(key, d.uri);
    if (s > bestScore) {
      best = d;
      bestScore = s;
    }
  }
  return best;
}

/** 32-bit FNV-1a over `key \0 uri`, finished with murmur3's fmix32 for avalanche. */
export function hashScore(key: string, uri: string): number {
  let h = 0x811c9dc5;
  const text = `${key}\u0000${uri}`;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Random pick with probability proportional to weight (uniform when all weights are equal). */
function weightedRandom(candidates: readonly Destination[], random: () => number): Destination | undefined {
  let total = 0;
  for (const d of candidates) total += Math.max(0, d.weight);
  if (total <= 0) return candidates[Math.floor(random() * candidates.length)];
  let r = random() * total;
  for (const d of candidates) {
    r -= Math.max(0, d.weight);
    if (r < 0) return d;
  }
  return candidates[candidates.length - 1];
}

/** Lowest `priority` value first; configuration order breaks ties. */
function byPriority(candidates: readonly Destination[]): Destination | undefined {
  let best: Destination | undefined;
  for (const d of candidates) if (!best || d.priority < best.priority) best = d;
  return best;
}

/**
 * Fewest active calls among the candidates below their `maxCalls`; ties go round-robin so equal
 * loads still spread. Undefined when every candidate is at its limit.
 */
function leastLoaded(all: readonly Destination[], candidates: readonly Destination[], state: AlgorithmState): Destination | undefined {
  let min = Infinity;
  for (const d of candidates) if (d.hasCapacity && d.activeCalls < min) min = d.activeCalls;
  if (min === Infinity) return undefined;
  return roundRobin(all, candidates.filter((d) => d.hasCapacity && d.activeCalls === min), state);
}
