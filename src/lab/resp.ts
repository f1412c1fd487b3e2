/**
 * One Redis command over a fresh connection, with a timeout: what the lab needs to ask Sentinels
 * who the primary is and read lease keys, including while the primary is being killed (a pooled
 * client would hang or reconnect behind our back exactly when the figures are taken).
 */
import net from 'node:net';

export type RespReply = string | number | null | RespReply[] | Error;

/** Parses one reply from `buf` at `at`; undefined when incomplete. */
function parseReply(buf: Buffer, at: number): { value: RespReply; next: number } | undefined {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[at]!);
  const line = buf.toString('latin1', at + 1, eol);
  switch (type) {
    case '+':
      return { value: line, next: eol + 2 };
    case '-':
      return { value: new Error(line), next: eol + 2 };
    case ':':
      return { value: Number(line), next: eol + 2 };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, next: eol + 2 };
      if (buf.length < eol + 2 + len + 2) return undefined;
      return { value: buf.toString('utf8', eol + 2, eol + 2 + len), next: eol + 4 + len };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, next: eol + 2 };
      const out: RespReply[] = [];
      let next = eol + 2;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, next);
        if (!r) return undefined;
        out.push(r.value);
        next = r.next;
      }
      return { value: out, next };
    }
    default:
      return { value: new Error(`bad reply type ${type}`), next: buf.length };
  }
}

export function encodeCommand(args: Array<string | number>): string {
  return `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join('');
}

/** Sends one command; rejects on timeout or a closed connection, resolves a server error as an Error value. */
export function respCall(host: string, port: number, args: Array<string | number>, timeoutMs = 500): Promise<RespReply> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    let buf = Buffer.alloc(0);
    const done = (err: Error | undefined, value?: RespReply): void => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(value ?? null);
    };
    const timer = setTimeout(() => done(new Error(`redis ${host}:${port}: no answer in ${timeoutMs} ms`)), timeoutMs);
    sock.once('error', (e) => done(e));
    sock.once('connect', () => sock.write(encodeCommand(args)));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const r = parseReply(buf, 0);
      if (r) done(undefined, r.value);
    });
    sock.once('close', () => done(new Error(`redis ${host}:${port}: closed`)));
  });
}

/** The primary every answering Sentinel names (first answer wins), as host:port. */
export async function sentinelPrimary(sentinels: Array<{ host: string; port: number }>, master: string): Promise<{ host: string; port: number } | undefined> {
  for (const s of sentinels) {
    const r = await respCall(s.host, s.port, ['SENTINEL', 'get-master-addr-by-name', master], 300).catch(() => undefined);
    if (Array.isArray(r) && typeof r[0] === 'string') return { host: r[0], port: Number(r[1]) };
  }
  return undefined;
}
