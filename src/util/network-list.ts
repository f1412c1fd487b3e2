import { BlockList, isIP } from 'node:net';
import { fail, ok, type Result } from './result.js';

/** A set of networks (CIDR or plain addresses, IPv4 and IPv6); membership is one BlockList check. */
export class NetworkList {
  readonly #list = new BlockList();

  private constructor() {}

  /** Builds the list; fails naming the first entry that is not an address or CIDR network. */
  static create(networks: readonly string[], errorCode = 'ERR_NETWORK_LIST'): Result<NetworkList> {
    const nl = new NetworkList();
    for (const n of networks) {
      const [addr, prefixText] = n.trim().split('/');
      const fam = isIP(addr ?? '');
      if (!fam) return fail(errorCode, `not an address or network: ${n}`);
      const type = fam === 6 ? 'ipv6' : 'ipv4';
      const max = fam === 6 ? 128 : 32;
      const prefix = prefixText === undefined ? max : Number(prefixText);
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) return fail(errorCode, `bad prefix length in ${n}`);
      nl.#list.addSubnet(addr!, prefix, type);
    }
    return ok(nl);
  }

  /** Whether `address` (IPv4, IPv6 or IPv4-mapped IPv6) is in one of the networks. */
  has(address: string): boolean {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    const a = mapped ? mapped[1]! : address;
    const fam = isIP(a);
    if (!fam) return false;
    return this.#list.check(a, fam === 6 ? 'ipv6' : 'ipv4');
  }
}
