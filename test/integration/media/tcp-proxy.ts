/**
 * A TCP proxy on 127.0.0.1 in front of a server (Redis) that a test can cut (every connection
 * dropped, new ones refused) and restore on the same port: one node loses Redis while the others
 * keep it.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export class TcpProxy {
  port: number;
  readonly #target: number;
  #server: Server | undefined;
  readonly #sockets = new Set<Socket>();

  private constructor(port: number, target: number) {
    this.port = port;
    this.#target = target;
  }

  static async start(target: number, port = 0): Promise<TcpProxy> {
    const p = new TcpProxy(port, target);
    p.port = await p.#listen(port);
    return p;
  }

  #listen(port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const srv = createServer((client) => {
        const upstream = createConnection({ host: '127.0.0.1', port: this.#target });
        for (const s of [client, upstream]) {
          this.#sockets.add(s);
          s.on('close', () => this.#sockets.delete(s));
          s.on('error', () => undefined);
        }
        client.pipe(upstream);
        upstream.pipe(client);
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
      });
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', () => {
        this.#server = srv;
        const a = srv.address();
        resolve(typeof a === 'object' && a ? a.port : port);
      });
    });
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Drops every connection and stops accepting. */
  async cut(): Promise<void> {
    const srv = this.#server;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    if (srv) await new Promise<void>((r) => srv.close(() => r()));
  }

  /** Accepts connections again on the same port. */
  async restore(): Promise<void> {
    if (!this.#server) await this.#listen(this.port);
  }

  async close(): Promise<void> {
    await this.cut();
  }
}
