import type { LabPart } from './lab-plan.js';
import type { LabTopology } from './lab.js';

/**
 * What the lab needs from a network of namespaces (`--netns`); loopback mode has none. The
 * implementation lives in ./netns/ and records what it makes under the lab dir, so `teardown`
 * removes exactly that.
 */
export interface LabNetwork {
  /** Root, `ip`, keepalived present, no namespace left from a crashed run: else a clear error. */
  preflight(dir?: string): Promise<void>;
  /** Namespace name of a part. */
  namespaceOf(dir: string, part: string): string;
  /**
   * Makes the bridge, one namespace per part with its address, the host's address on the
   * bridge, and the keepalived configuration of each node pair; returns the keepalived parts
   * (named `keepalived-<node>`) for the lab to start with the others.
   */
  create(dir: string, topo: LabTopology): Promise<LabPart[]>;
  /** Takes a part's link down or up (`tandem lab kill --how link-down`). */
  setLink(dir: string, topo: LabTopology, part: string, up: boolean): void;
  /** The part whose namespace holds an address now. */
  addressHolder(dir: string, topo: LabTopology, address: string): string | undefined;
  /** Removes every namespace and link the lab made; returns what it removed. */
  teardown(dir: string): Promise<string[]>;
}
