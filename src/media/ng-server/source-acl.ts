import { NetworkList } from '../../util/network-list.js';
import { ok, type Result } from '../../util/result.js';

/** Networks allowed to send ng commands by default: loopback only. */
export const DEFAULT_NG_ALLOW = ['127.0.0.0/8', '::1/128'];

/** Source addresses whose verdict is remembered (a controller sends from a handful). */
const VERDICT_CACHE_MAX = 1024;

/** Allow-list of source networks (CIDR or plain addresses) for ng commands. */
export class SourceAcl {
  readonly #list: NetworkList;
  /** address -> allowed; a BlockList check costs tens of µs, every ng message asks. Cleared when full. */
  readonly #verdicts = new Map<string, boolean>();

  private constructor(list: NetworkList) {
    this.#list = list;
  }

  /** Builds the list; fails naming the first entry that is not an address or CIDR. */
  static create(networks: readonly string[]): Result<SourceAcl> {
    const r = NetworkList.create(networks, 'NG_ERR_CONFIG');
    return r.ok ? ok(new SourceAcl(r.value)) : r;
  }

  allows(address: string): boolean {
    const known = this.#verdicts.get(address);
    if (known !== undefined) return known;
    const v = this.#list.has(address);
    if (this.#verdicts.size >= VERDICT_CACHE_MAX) this.#verdicts.clear();
    this.#verdicts.set(address, v);
    return v;
  }
}
