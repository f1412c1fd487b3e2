import { BlockList, isIP } from 'node:net';
import { fail, ok, type Result } from '../../util/result.js';

/** Networks allowed to send ng commands by default: loopback only. */
export const DEFAULT_NG_ALLOW = ['127.0.0.0/8', '::1/128'];

/** Allow-list of source networks (CIDR or plain addresses). */
export class SourceAcl {
  readonly #list = new BlockList();

  private constructor() {}

  /** Builds the list; fails naming the first entry that is not an address or CIDR. */
  static create(networks: readonly string[]): Result<SourceAcl> {
    const acl = new SourceAcl();
    for (const n of networks) {
      const [addr, prefixText] = n.trim().split('/');
      const fam = isIP(addr ?? '');
      if (!fam) return fail('NG_ERR_CONFIG', `not an address or network: ${n}`);
      const type = fam === 6 ? 'ipv6' : 'ipv4';
      const max = fam === 6 ? 128 : 32;
      const prefix = prefixText === undefined ? max : Number(prefixText);
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) return fail('NG_ERR_CONFIG', `bad prefix length in ${n}`);
      acl.#list.addSubnet(addr!, prefix, type);
    }
    return ok(acl);
  }

  allows(address: string): boolean {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    const a = mapped ? mapped[1]! : address;
    const fam = isIP(a);
    if (!fam) return false;
    return this.#list.check(a, fam === 6 ? 'ipv6' : 'ipv4');
  }
}
