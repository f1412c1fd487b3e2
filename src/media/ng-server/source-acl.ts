import { NetworkList } from '../../util/network-list.js';
import { ok, type Result } from '../../util/result.js';

/** Networks allowed to send ng commands by default: loopback only. */
export const DEFAULT_NG_ALLOW = ['127.0.0.0/8', '::1/128'];

/** Allow-list of source networks (CIDR or plain addresses) for ng commands. */
export class SourceAcl {
  readonly #list: NetworkList;

  private constructor(list: NetworkList) {
    this.#list = list;
  }

  /** Builds the list; fails naming the first entry that is not an address or CIDR. */
  static create(networks: readonly string[]): Result<SourceAcl> {
    const r = NetworkList.create(networks, 'NG_ERR_CONFIG');
    return r.ok ? ok(new SourceAcl(r.value)) : r;
  }

  allows(address: string): boolean {
    return this.#list.has(address);
  }
}
