/** The lab's network of namespaces (`tandem lab up --netns`), on top of ./netns/. */
import type { LabNetwork } from './lab-network.js';

export function netnsLabNetwork(): LabNetwork {
  throw new Error('netns mode is not built yet: use --loopback');
}
