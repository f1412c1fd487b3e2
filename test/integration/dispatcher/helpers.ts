/**
 * Real-process helpers for the dispatcher tests and bench: spawn back-end UAS processes and
 * `tandem start`, and a small UAC on a real UDP socket that places INVITE/ACK/BYE calls.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createRequest, newBranch } from '../../../src/sip/message/builders.js';
import { parseMessage } from '../../../src/sip/message/parser.js';
import { serialize } from '../../../src/sip/message/serializer.js';
import { SipResponse, type SipRequest } from '../../../src/sip/message/sip-message.js';

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(here, '../../..');
const children = new Set<ChildProcess>();

/** Kills every child this module started (call in afterAll / on exit). */
export function killAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
}
process.on('exit', killAll);

export interface Backend {
  name: string;
  port: number;
  uri: string;
  proc: ChildProcess;
  /** Call-IDs of INVITEs received, in order. */
  invites: string[];
  byes: string[];
  options: number;
  /** Requests received again (INVITE / BYE retransmissions from the proxy). */
  retransReceived: number;
  /** Finals this back-end re-sent because the ACK was late. */
  finalsResent: number;
  setMode(mode: 'answer' | 'ring-forever' | 'trying-only' | 'silent' | `${number}`): void;
  kill(): void;
}

/** Starts a back-end UAS process; `port` lets a test restart one on the same port. */
export async function startBackend(name: string, opts: { mode?: string; port?: number; ringMs?: number } = {}): Promise<Backend> {
  const argv = ['--import', 'tsx', join(here, 'fixtures/backend-uas.ts'), '--name', name, '--mode', opts.mode ?? 'answer', '--port', String(opts.port ?? 0), '--ring-ms', String(opts.ringMs ?? 0)];
  const proc = spawn(process.execPath, argv, { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(proc);
  const b: Backend = {
    name,
    port: 0,
    uri: '',
    proc,
    invites: [],
    byes: [],
    options: 0,
    retransReceived: 0,
    finalsResent: 0,
    setMode: (m) => proc.stdin!.write(`mode ${m}\n`),
    kill: () => proc.kill('SIGKILL'),
  };
  const ready = new Promise<void>((res, rej) => {
    proc.once('exit', (code) => rej(new Error(`backend ${name} exited ${code}`)));
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      let o: { listening?: number; invite?: string; bye?: string; options?: number; retrans?: string; resent?: string };
      try {
        o = JSON.parse(line);
      } catch {
        return;
      }
      if (o.listening) {
        b.port = o.listening;
        b.uri = `sip:127.0.0.1:${o.listening}`;
        res();
      } else if (o.invite) b.invites.push(o.invite);
      else if (o.bye) b.byes.push(o.bye);
      else if (o.options) b.options++;
      else if (o.retrans) b.retransReceived++;
      else if (o.resent) b.finalsResent++;
    });
  });
  await withTimeout(ready, 15_000, `backend ${name} start`);
  return b;
}

export interface Node {
  proc: ChildProcess;
  sipPort: number;
  adminPort: number;
  /** Admin API call with the node's bearer token (or `token`, e.g. a wrong one). */
  admin(path: string, init?: { method?: string; body?: unknown; token?: string }): Promise<{ status: number; json: any }>;
  stop(): Promise<void>;
}

/** The admin bearer token every test node is started with. */
export const ADMIN_TOKEN = 'test-admin-token-0123456789';

/** Starts `tandem start` with a YAML config; resolves when its SIP and admin ports are known. */
export async function startTandem(configYaml: string, extraArgs: string[] = []): Promise<Node> {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-ds-'));
  const cfg = join(dir, 'tandem.yaml');
  writeFileSync(cfg, configYaml);
  const proc = spawn(process.execPath, [join(ROOT, 'bin/tandem.mjs'), 'start', '--config', cfg, '--no-auth', '--sip', 'udp:127.0.0.1:0', '--admin', '127.0.0.1:0', '--admin-token', ADMIN_TOKEN, '--no-media', ...extraArgs], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TANDEM_LOG_LEVEL: process.env.TANDEM_LOG_LEVEL ?? 'warn' },
  });
  children.add(proc);
  let sipPort = 0;
  let adminPort = 0;
  const logs: string[] = [];
  const scan = (line: string) => {
    if (logs.length < 2000) logs.push(line);
    // Ports are announced in the startup log (JSON or text); pick them up from either.
    const sip = /udp:127\.0\.0\.1:(\d+)/.exec(line) ?? /"sip[^"]*":\s*"?udp:\/?\/?127\.0\.0\.1:(\d+)/.exec(line);
    if (!sipPort && sip && sip[1] !== '0') sipPort = Number(sip[1]);
    const adm = /admin[^\n]*?127\.0\.0\.1:(\d+)/i.exec(line) ?? /"adminPort":\s*(\d+)/.exec(line);
    if (!adminPort && adm && adm[1] !== '0') adminPort = Number(adm[1]);
  };
  createInterface({ input: proc.stdout! }).on('line', scan);
  createInterface({ input: proc.stderr! }).on('line', scan);
  const started = Date.now();
  while (!(sipPort && adminPort)) {
    if (proc.exitCode !== null) throw new Error(`tandem start exited ${proc.exitCode}:\n${logs.slice(-30).join('\n')}`);
    if (Date.now() - started > 20_000) throw new Error(`tandem start did not report ports:\n${logs.slice(-30).join('\n')}`);
    await sleep(50);
  }
  const node: Node = {
    proc,
    sipPort,
    adminPort,
    async admin(path, init = {}) {
      const r = await fetch(`http://127.0.0.1:${adminPort}${path}`, {
        method: init.method ?? 'GET',
        headers: { authorization: `Bearer ${init.token ?? ADMIN_TOKEN}`, ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
      });
      const text = await r.text();
      let json: unknown = text;
      try {
        json = JSON.parse(text);
      } catch {
        /* text */
      }
      return { status: r.status, json };
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await once(proc, 'exit');
      clearTimeout(t);
    },
  };
  return node;
}

export interface CallResult {
  callId: string;
  /** Final status of the INVITE (408 when nothing came back within Timer B). */
  status: number;
  /** Back-end that answered (X-Backend of the final response). */
  backend?: string;
  /** ms from INVITE to the final response. */
  setupMs: number;
  /** BYE answered 200 (true), failed (false), not sent (undefined). */
  byeOk?: boolean;
}

interface Pending {
  req: SipRequest;
  onResponse(res: SipResponse): void;
}

/**
 * UAC on one real UDP socket: any number of concurrent calls, demultiplexed by Call-ID + CSeq
 * method. INVITE Timer A/B and non-INVITE Timer E/F per RFC 3261 §17.1 (T1 500 ms, T2 4 s).
 */
export class TestUac {
  #sock: Socket = createSocket('udp4');
  #pending = new Map<string, Pending>();
  port = 0;
  /** Requests sent again by Timer A / E (the bench reports them). */
  retransmissions = 0;
  inviteRetransmissions = 0;
  byeRetransmissions = 0;

  async open(): Promise<void> {
    this.#sock.on('message', (buf) => {
      const p = parseMessage(buf);
      if (!p.ok || !(p.value instanceof SipResponse)) return;
      const res = p.value;
      const key = `${res.callId} ${res.cseq.method}`;
      this.#pending.get(key)?.onResponse(res);
    });
    this.#sock.bind(0, '127.0.0.1');
    await once(this.#sock, 'listening');
    this.port = this.#sock.address().port;
  }

  close(): void {
    try {
      this.#sock.close();
    } catch {
      /* closed */
    }
  }

  #send(req: SipRequest, port: number): void {
    this.#sock.send(serialize(req), port, '127.0.0.1');
  }

  /** INVITE -> final; ACK; hold; BYE. `to` is the Request-URI. */
  async call(proxyPort: number, to: string, holdMs = 0, opts: { byeTimeoutMs?: number } = {}): Promise<CallResult> {
    const via = () => `SIP/2.0/UDP 127.0.0.1:${this.port};branch=${newBranch()};rport`;
    const invite = createRequest({
      method: 'INVITE',
      uri: to,
      from: `<sip:caller@127.0.0.1:${this.port}>`,
      to: `<${to}>`,
      via: via(),
      contact: `<sip:caller@127.0.0.1:${this.port}>`,
      cseq: 1,
    });
    const callId = invite.callId;
    const started = performance.now();
    const final = await new Promise<SipResponse | undefined>((resolveFinal) => {
      let interval = 500;
      let provisional = false;
      let done = false;
      const timerA = () => {
        if (done || provisional) return;
        this.retransmissions++;
        this.inviteRetransmissions++;
        this.#send(invite, proxyPort);
        interval *= 2;
        tA = setTimeout(timerA, interval);
      };
      let tA = setTimeout(timerA, interval);
      const tB = setTimeout(() => finish(undefined), 64 * 500 + 40_000); // B, plus room for a 60 s fr_inv_timer in the bench
      const finish = (r: SipResponse | undefined) => {
        if (done) return;
        done = true;
        clearTimeout(tA);
        clearTimeout(tB);
        resolveFinal(r);
      };
      this.#pending.set(`${callId} INVITE`, {
        req: invite,
        onResponse: (res) => {
          if (res.status < 200) {
            provisional = true;
            return;
          }
          if (res.status >= 300) {
            // §17.1.1.3: ACK for a non-2xx final, same branch, hop by hop (also for retransmissions).
            const ack = createRequest({ method: 'ACK', uri: to, from: invite.get('From')!, to: res.get('To')!, callId, cseq: 1, via: invite.get('Via')! });
            this.#send(ack, proxyPort);
          } else this.#ack2xx(invite, res, proxyPort);
          finish(res);
        },
      });
      this.#send(invite, proxyPort);
    });
    const setupMs = performance.now() - started;
    if (!final) {
      this.#pending.delete(`${callId} INVITE`);
      return { callId, status: 408, setupMs };
    }
    const result: CallResult = { callId, status: final.status, setupMs };
    const backend = final.get('X-Backend');
    if (backend) result.backend = backend;
    if (final.status >= 200 && final.status < 300) {
      if (holdMs > 0) await sleep(holdMs);
      result.byeOk = await this.#bye(invite, final, proxyPort, opts.byeTimeoutMs ?? 64 * 500);
    }
    // keep absorbing 2xx retransmissions for a moment, then forget the call
    setTimeout(() => this.#pending.delete(`${callId} INVITE`), 8000).unref();
    return result;
  }

  /** §13.2.2.4: ACK for a 2xx, new branch, along the route set; sent again for each 2xx retransmission. */
  #ack2xx(invite: SipRequest, res: SipResponse, proxyPort: number): void {
    const { uri, routes } = this.#dialogTarget(res);
    const ack = createRequest({
      method: 'ACK',
      uri,
      from: invite.get('From')!,
      to: res.get('To')!,
      callId: invite.callId,
      cseq: 1,
      via: `SIP/2.0/UDP 127.0.0.1:${this.port};branch=${newBranch()};rport`,
      headers: routes.map((r) => ['Route', r] as [string, string]),
    });
    this.#send(ack, proxyPort);
  }

  #dialogTarget(res: SipResponse): { uri: string; routes: string[] } {
    const contact = res.contacts[0];
    const uri = contact && contact !== '*' ? `sip:${contact.uri.user ? contact.uri.user + '@' : ''}${contact.uri.host}${contact.uri.port ? ':' + contact.uri.port : ''}` : 'sip:unknown@127.0.0.1';
    // UAC route set = Record-Route reversed (§12.1.2)
    const routes = res.getAll('Record-Route').reverse();
    return { uri, routes };
  }

  async #bye(invite: SipRequest, ok: SipResponse, proxyPort: number, timeoutMs: number): Promise<boolean> {
    const { uri, routes } = this.#dialogTarget(ok);
    const bye = createRequest({
      method: 'BYE',
      uri,
      from: invite.get('From')!,
      to: ok.get('To')!,
      callId: invite.callId,
      cseq: 2,
      via: `SIP/2.0/UDP 127.0.0.1:${this.port};branch=${newBranch()};rport`,
      headers: routes.map((r) => ['Route', r] as [string, string]),
    });
    const key = `${invite.callId} BYE`;
    const res = await new Promise<SipResponse | undefined>((resolveBye) => {
      let interval = 500;
      let done = false;
      const timerE = () => {
        if (done) return;
        this.retransmissions++;
        this.byeRetransmissions++;
        this.#send(bye, proxyPort);
        interval = Math.min(interval * 2, 4000);
        tE = setTimeout(timerE, interval);
      };
      let tE = setTimeout(timerE, interval);
      const tF = setTimeout(() => finish(undefined), timeoutMs);
      const finish = (r: SipResponse | undefined) => {
        if (done) return;
        done = true;
        clearTimeout(tE);
        clearTimeout(tF);
        this.#pending.delete(key);
        resolveBye(r);
      };
      this.#pending.set(key, { req: bye, onResponse: (r) => r.status >= 200 && finish(r) });
      this.#send(bye, proxyPort);
    });
    return !!res && res.status >= 200 && res.status < 300;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<T>((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: timed out after ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

/** Polls `fn` until it returns truthy or `ms` passes. */
export async function waitFor<T>(fn: () => T | Promise<T>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what}: not reached within ${ms} ms`);
    await sleep(50);
  }
}

/** YAML config for `tandem start` with one dispatcher set `pbx` and prefix route `9` -> pbx. */
export function dispatcherYaml(opts: {
  backends: { uri: string; weight?: number; maxCalls?: number; priority?: number }[];
  algorithm: string;
  hashKey?: string;
  intervalSec?: number;
  downAfter?: number;
  upAfter?: number;
  frTimerMs?: number;
  frInvTimerMs?: number;
}): string {
  const dests = opts.backends
    .map((b) => `        - uri: "${b.uri}"\n` + (b.weight !== undefined ? `          weight: ${b.weight}\n` : '') + (b.maxCalls !== undefined ? `          maxCalls: ${b.maxCalls}\n` : '') + (b.priority !== undefined ? `          priority: ${b.priority}\n` : ''))
    .join('');
  return (
    `dispatcher:\n` +
    `  sets:\n    pbx:\n      algorithm: ${opts.algorithm}\n` +
    (opts.hashKey ? `      hashKey: ${opts.hashKey}\n` : '') +
    `      destinations:\n${dests}` +
    `  routes:\n    - prefix: "9"\n      set: pbx\n` +
    `  probing:\n    intervalSec: ${opts.intervalSec ?? 1}\n    downAfter: ${opts.downAfter ?? 2}\n    upAfter: ${opts.upAfter ?? 2}\n` +
    `  failover:\n    frTimerMs: ${opts.frTimerMs ?? 1000}\n    frInvTimerMs: ${opts.frInvTimerMs ?? 3000}\n`
  );
}
