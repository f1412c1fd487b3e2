/**
 * MediaControl over the ng protocol: one NgClient per media node. Each call is pinned to the
 * node that took its offer (answer and delete go there); new calls go round-robin over the
 * nodes that are up. A node that times out or reports `load limit` is skipped for
 * `downForMs` and the offer is retried on the next one.
 */
import { NgClient } from '../../ng/ng-client.js';
import { counter } from '../../util/metrics.js';
import { createLogger, rateLimitedLog } from '../../util/logger.js';
import { fail, ok, type Result } from '../../util/result.js';
import type { MediaAnswerInput, MediaControl, MediaOfferInput } from './media-control.js';

const log = createLogger('media-control');
const ngErrors = counter('tandem_media_control_errors_total', 'ng commands to media nodes that failed, by node and code', ['node', 'code']);
const pinsEvicted = counter('tandem_media_control_pins_evicted_total', 'Call-to-media-node pins dropped, oldest first, because the map was full');

export interface NgMediaControlOptions {
  /** Media nodes, `host:port` of their ng UDP socket. */
  nodes: Array<{ host: string; port: number }>;
  /**
   * How long a node that failed is skipped for new calls.
   * @default 10000
   */
  downForMs?: number;
  /**
   * ng request timeout per node (retransmitting every 500 ms).
   * @default 2000
   */
  timeoutMs?: number;
  /** ng flags sent with every offer/answer. @default ['SIP-source-address'] is not used: SDP addresses are trusted on loopback */
  flags?: string[];
  /**
   * Calls whose media node is remembered. Past this the least recently signalled call's pin is
   * dropped (its later commands go to the round-robin choice), never the whole map.
   * @default 1000000
   */
  maxPinnedCalls?: number;
}

interface NodeState {
  client: NgClient;
  name: string;
  downUntil: number;
}

export class NgMediaControl implements MediaControl {
  #nodes: NodeState[];
  #byCall = new Map<string, NodeState>();
  #rr = 0;
  #downForMs: number;
  #flags: string[];
  #maxPinned: number;

  constructor(opts: NgMediaControlOptions) {
    const timeoutMs = opts.timeoutMs ?? 2000;
    this.#nodes = opts.nodes.map((n) => ({
      client: new NgClient({ host: n.host, port: n.port, retransmitIntervalMs: 500, retransmits: Math.max(0, Math.ceil(timeoutMs / 500) - 1), timeoutMs }),
      name: `${n.host}:${n.port}`,
      downUntil: 0,
    }));
    this.#downForMs = opts.downForMs ?? 10_000;
    this.#flags = opts.flags ?? ['trust-address'];
    this.#maxPinned = opts.maxPinnedCalls ?? 1_000_000;
  }

  /** Pins a call to a node; the Map's order is the age of the last signal, so the oldest goes first. */
  #pin(callId: string, node: NodeState): void {
    this.#byCall.delete(callId);
    this.#byCall.set(callId, node);
    while (this.#byCall.size > this.#maxPinned) {
      const oldest = this.#byCall.keys().next().value;
      if (oldest === undefined) break;
      this.#byCall.delete(oldest);
      pinsEvicted.inc();
    }
  }

  get pinnedCalls(): number {
    return this.#byCall.size;
  }

  get nodeNames(): string[] {
    return this.#nodes.map((n) => n.name);
  }

  async offer(input: MediaOfferInput): Promise<Result<Buffer>> {
    const existing = this.#byCall.get(input.callId) ?? this.#nodes.find((n) => n.name === input.node);
    const order = existing ? [existing] : this.#candidates();
    let last = 'no media node available';
    for (const node of order) {
      const r = await node.client.offer({
        callId: input.callId,
        fromTag: input.fromTag,
        sdp: input.sdp.toString('utf8'),
        flags: this.#flags,
        replace: ['origin', 'session-connection'],
        ...(input.sourceAddress ? { receivedFrom: input.sourceAddress } : {}),
        ...(input.viaBranch ? { viaBranch: input.viaBranch } : {}),
      });
      if (r.ok) {
        this.#pin(input.callId, node);
        return ok(Buffer.from(r.value.sdp, 'utf8'));
      }
      ngErrors.inc({ node: node.name, code: r.code });
      last = `${node.name}: ${r.reason}`;
      if (r.code === 'NG_ERR_TIMEOUT' || r.code === 'NG_ERR_LOAD_LIMIT' || r.code === 'NG_ERR_SEND') {
        node.downUntil = Date.now() + this.#downForMs;
        rateLimitedLog(`ng-down-${node.name}`, (s) => log.warn({ node: node.name, code: r.code, suppressed: s }, 'media node skipped'));
        if (existing) break;
        continue;
      }
      break;
    }
    return fail('MEDIA_ERR_OFFER', last);
  }

  async answer(input: MediaAnswerInput): Promise<Result<Buffer>> {
    const node = this.#byCall.get(input.callId) ?? this.#nodes.find((n) => n.name === input.node);
    if (!node) return fail('MEDIA_ERR_NO_SESSION', 'no offer for this call');
    const r = await node.client.answer({
      callId: input.callId,
      fromTag: input.fromTag,
      toTag: input.toTag,
      sdp: input.sdp.toString('utf8'),
      flags: this.#flags,
      replace: ['origin', 'session-connection'],
      ...(input.sourceAddress ? { receivedFrom: input.sourceAddress } : {}),
    });
    if (!r.ok) {
      ngErrors.inc({ node: node.name, code: r.code });
      return fail('MEDIA_ERR_ANSWER', `${node.name}: ${r.reason}`);
    }
    this.#pin(input.callId, node);
    return ok(Buffer.from(r.value.sdp, 'utf8'));
  }

  async isActive(callId: string): Promise<boolean | undefined> {
    const node = this.#byCall.get(callId);
    if (!node) return undefined;
    const r = await node.client.query({ callId });
    if (r.ok) return true;
    // The node answered that it has no such call; anything else (timeout) says nothing.
    return r.code === 'NG_ERR_REMOTE' ? false : undefined;
  }

  nodeOf(callId: string): string | undefined {
    return this.#byCall.get(callId)?.name;
  }

  async delete(callId: string, fromTag?: string, nodeHint?: string): Promise<void> {
    const node = this.#byCall.get(callId) ?? this.#nodes.find((n) => n.name === nodeHint);
    // A call this node never saw and whose media node nobody recorded (set up by a peer that
    // died before writing it, or its pin was evicted): every media node is asked; the one that
    // holds it ends it, the others answer "not found".
    const targets = node ? [node] : this.#nodes;
    this.#byCall.delete(callId);
    await Promise.all(
      targets.map(async (n) => {
        const r = await n.client.delete({ callId, fromTag: fromTag ?? '' });
        if (!r.ok && r.code !== 'NG_ERR_REMOTE') ngErrors.inc({ node: n.name, code: r.code });
      }),
    );
  }

  async close(): Promise<void> {
    for (const n of this.#nodes) n.client.close();
  }

  /** Nodes to try for a new call: those up, round-robin, then those down as a last resort. */
  #candidates(): NodeState[] {
    const now = Date.now();
    const n = this.#nodes.length;
    const start = this.#rr++ % Math.max(1, n);
    const rotated = [...this.#nodes.slice(start), ...this.#nodes.slice(0, start)];
    return [...rotated.filter((x) => x.downUntil <= now), ...rotated.filter((x) => x.downUntil > now)];
  }
}
