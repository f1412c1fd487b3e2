import { pick, type Algorithm, type AlgorithmState, type HashKey } from './algorithms.js';
import { Destination, type DestinationSpec, type DestinationView } from './destination.js';

/** A named group of back-ends with a default algorithm (e.g. `pbx`). */
export class DestinationSet {
  readonly name: string;
  algorithm: Algorithm;
  hashKey: HashKey;
  readonly destinations: Destination[] = [];
  readonly state: AlgorithmState = { rrCursor: 0 };

  constructor(name: string, algorithm: Algorithm, hashKey: HashKey) {
    this.name = name;
    this.algorithm = algorithm;
    this.hashKey = hashKey;
  }

  find(uri: string): Destination | undefined {
    return this.destinations.find((d) => d.uri === uri);
  }

  /** Adds a destination, or updates weight/priority/maxCalls/attrs of an existing one. */
  upsert(spec: DestinationSpec): Destination {
    const existing = this.find(spec.uri);
    if (existing) {
      if (spec.weight !== undefined) existing.weight = spec.weight;
      if (spec.priority !== undefined) existing.priority = spec.priority;
      if (spec.maxCalls !== undefined) existing.maxCalls = spec.maxCalls;
      if (spec.attrs) existing.attrs = { ...spec.attrs };
      return existing;
    }
    const d = new Destination(spec);
    this.destinations.push(d);
    return d;
  }

  remove(uri: string): Destination | undefined {
    const i = this.destinations.findIndex((d) => d.uri === uri);
    if (i < 0) return undefined;
    const [d] = this.destinations.splice(i, 1);
    if (this.state.rrCursor > i) this.state.rrCursor--;
    if (this.state.rrCursor >= this.destinations.length) this.state.rrCursor = 0;
    return d;
  }

  /**
   * Picks the next destination not in `exclude` that may take a new call. With `tryAllWhenAllDown`
   * and no enabled destination up at all ("panic": the health signal says everything is dead,
   * which after an overload is more likely wrong than right), enabled destinations are tried
   * regardless of health instead of rejecting every call; `panic` is set on the result.
   */
  choose(
    algorithm: Algorithm,
    exclude: ReadonlySet<Destination>,
    key: string | undefined,
    random: () => number,
    tryAllWhenAllDown = false,
  ): { destination: Destination | undefined; panic: boolean } {
    const ctx = { ...(key !== undefined ? { key } : {}), random };
    const candidates = this.destinations.filter((d) => d.available && !exclude.has(d));
    if (candidates.length > 0 || !tryAllWhenAllDown || this.destinations.some((d) => d.available)) {
      return { destination: pick(algorithm, this.destinations, candidates, this.state, ctx), panic: false };
    }
    const enabled = this.destinations.filter((d) => d.admin === 'enabled' && !exclude.has(d));
    return { destination: pick(algorithm, this.destinations, enabled, this.state, ctx), panic: enabled.length > 0 };
  }

  toJSON(): DestinationSetView {
    return {
      name: this.name,
      algorithm: this.algorithm,
      hashKey: this.hashKey,
      available: this.destinations.filter((d) => d.available).length,
      destinations: this.destinations.map((d) => d.toJSON()),
    };
  }
}

export interface DestinationSetView {
  name: string;
  algorithm: Algorithm;
  hashKey: HashKey;
  available: number;
  destinations: DestinationView[];
}
