/**
 * State store interfaces. SIP logic (registrar, proxy, dialog tracker) uses these and never
 * touches a database, like a registrar vs its user-location storage. `memory/` implements them
 * for one process; a Redis implementation shares them across a cluster.
 *
 * Methods return promises so a networked store fits the same interface; the memory store
 * resolves at once.
 */

/** How a binding's contact is reached: the transport flow the REGISTER came in on. */
export interface FlowEndpoint {
  transport: 'udp' | 'tcp' | 'tls';
  address: string;
  port: number;
  /** Local listening address/port the REGISTER arrived on. */
  localAddress?: string;
  localPort?: number;
  connectionId?: number;
}

/** One registered contact of an address-of-record (RFC 3261 §10). */
export interface Binding {
  /** Canonical AOR, e.g. `sip:alice@example.com`. */
  aor: string;
  /** Contact URI as registered (without name-addr parameters). */
  contact: string;
  /** q-value 0..1 (RFC 3261 §20.10). @default 1 */
  q: number;
  /** Absolute expiry, ms since the epoch. */
  expiresAtMs: number;
  callId: string;
  cseq: number;
  /** Where the REGISTER actually came from (received/rport): the path to the contact behind NAT. */
  received?: FlowEndpoint;
  /** Path header values, top first (RFC 3327): requests to this contact get them as Route. */
  path?: string[];
  /** +sip.instance (RFC 5626), when present. */
  instanceId?: string;
  userAgent?: string;
  /** Node that accepted the binding (cluster). */
  owner?: string;
  updatedAtMs: number;
}

export interface LocationStoreEvents {
  expired: (binding: Binding) => void;
}

export interface LocationStore {
  /** Current, unexpired bindings of an AOR. */
  getBindings(aor: string): Promise<Binding[]>;
  /** Replaces the whole binding set of an AOR (empty array removes it). */
  setBindings(aor: string, bindings: Binding[]): Promise<void>;
  /** Number of stored bindings. */
  size(): number;
  /** Number of AORs with at least one binding. */
  aorCount(): number;
  /** Called for every binding removed because it expired. */
  onExpired(listener: (binding: Binding) => void): void;
  close(): Promise<void>;
}

/**
 * A location store held in this process: reads and writes complete at once, so the registrar
 * decides a REGISTER without a promise (`Registrar.decideNow`).
 */
export interface SyncLocationStore extends LocationStore {
  getBindingsSync(aor: string): Binding[];
  setBindingsSync(aor: string, bindings: Binding[]): void;
}

export function isSyncLocationStore(store: LocationStore): store is SyncLocationStore {
  const s = store as Partial<SyncLocationStore>;
  return typeof s.getBindingsSync === 'function' && typeof s.setBindingsSync === 'function';
}

/** A dialog as the proxy tracks it (for counts, media cleanup and failover). */
export interface DialogRecord {
  /** Call-ID + from-tag + to-tag (to-tag empty while early). */
  id: string;
  callId: string;
  fromTag: string;
  toTag?: string;
  state: 'early' | 'confirmed';
  /** Destination key (e.g. dispatcher destination URI) the call went to. */
  destination?: string;
  /**
   * CSeq number of the INVITE that set the dialog up: a copy of that INVITE arriving again (no
   * To-tag, same Call-ID, From-tag and CSeq) is a retransmission, absorbed like RFC 6026's
   * Accepted state absorbs it.
   */
  cseq?: number;
  /** Media node (ng address) handling this call's media. */
  mediaNode?: string;
  createdAtMs: number;
  updatedAtMs: number;
  /** When the 2xx came (accounting). */
  answeredAtMs?: number;
  /** From and To of the INVITE as received, name-addr text (accounting). */
  fromUri?: string;
  toUri?: string;
  /** Node that set the call up. */
  creator?: string;
  /** Node whose duties the dialog is (timeouts, counts); changes when a peer claims it. */
  owner?: string;
  /** Grows at every claim: a node acts on a dialog only while the epoch it knows is current. */
  epoch?: number;
  /**
   * While early: what a peer needs to CANCEL or ACK the INVITE this node forwarded if this node
   * dies while the callee rings (From and To as forwarded, CSeq number, one entry per branch).
   */
  invite?: {
    from: string;
    to: string;
    cseq: number;
    branches: ForwardedBranch[];
    /** Serial forking through a dispatcher set: a peer goes on with the failover. */
    serial?: { set?: string; frTimerMs?: number; frInvTimerMs?: number };
    /** The INVITE as received (before the media offer), base64: a peer forwards it to the next destination. */
    request?: string;
    /**
     * MD5 of the body as received: a copy of the INVITE a peer sends on must carry this body (the
     * branch, Call-ID, CSeq and credentials a copy repeats do not cover it).
     */
    body?: string;
  };
}

/** One forwarded copy of an INVITE. */
export interface ForwardedBranch {
  /** Request-URI it was sent with. */
  uri: string;
  /** Where it went: `transport:address:port`. */
  hop: string;
  /** Our Via branch on it. */
  branch: string;
  /** Route header values it carried. */
  route?: string[];
  /** The index its Via branch was derived with. */
  index: number;
  /** Dispatcher destination (URI) it went to. */
  destination?: string;
}

/** One call's accounting record, written once per call by whichever node saw it end. */
export interface CallRecord {
  callId: string;
  from?: string;
  to?: string;
  /** INVITE received, answer (2xx), end: ms since the epoch. */
  startMs: number;
  answerMs?: number;
  endMs: number;
  /** Answered duration, seconds (0 for unanswered calls). */
  durationSec: number;
  endReason: 'bye' | 'failure' | 'cancel' | 'timeout';
  /** Node that set the call up, node that saw it end. */
  setupNode?: string;
  endNode?: string;
}

/**
 * Where call records go, exactly once per call across the cluster: `claim` says whether this
 * node is the one to write a call's record (the first to ask).
 */
export interface AccountingStore {
  /**
   * True for the first node to claim the call's record; never rejects (true when it cannot ask).
   * `setUpHere`: this node set the call up, so no other node can have seen it end before (unless
   * this node died meanwhile): the claim is recorded without waiting for an answer.
   */
  claim(callId: string, setUpHere?: boolean): Promise<boolean>;
  /** Appends the record to the shared log (a Redis stream); never blocks. */
  append(record: CallRecord): void;
  close(): Promise<void>;
}

export interface DialogStore {
  get(id: string): Promise<DialogRecord | undefined>;
  /**
   * Stores the record. `onDurable` is called once the record is where a peer can read it (at
   * once for a local store; once Redis answered the write, or a later write of the same record,
   * for a shared one; never when the write is dropped).
   */
  put(record: DialogRecord, onDurable?: () => void): Promise<void>;
  delete(id: string): Promise<void>;
  /** Nodes owning confirmed dialogs (shared stores only). */
  owners?(): Promise<string[]>;
  /** Takes over a dead node's confirmed dialogs atomically (this node becomes owner, epoch + 1). */
  claimOrphans?(deadOwner: string): Promise<DialogRecord[]>;
  size(): number;
  close(): Promise<void>;
}

/**
 * Nonce-count replay state (RFC 7616 §3.4: the server "MUST reject a request with a repeated
 * nc"), shared by every node of a cluster so a request replayed to another node is refused too.
 */
export interface NonceCountStore {
  /**
   * Accepts nonce-count `nc` for `nonce` when it is greater than every nc accepted for that nonce
   * before (atomically, across the cluster), and remembers it for `ttlSec` (the nonce lifetime).
   * Resolves false for a replay. Never rejects.
   */
  accept(nonce: string, nc: number, ttlSec: number): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * Failed-authentication counts per source address and the sources blocked for failing too often,
 * shared by every node: failures count across the cluster and a block reaches every node.
 * Shaped like `AuthFailureTracker` (src/sip/auth/digest-server.ts), which is the memory version.
 */
export interface AuthFailureStore {
  /** True while `source` is blocked. Synchronous: answers from what this node knows. */
  isBlocked(source: string): boolean;
  /** Records a failed authentication from `source`; true when this failure blocked it. */
  recordFailure(source: string): boolean;
  /** A successful authentication from `source`: its failure count starts again (a block stays). */
  recordSuccess(source: string): void;
  /** Sources blocked now, as this node knows them. */
  readonly blockedCount: number;
  close(): Promise<void>;
}

/** A node as the registry lists it. */
export interface NodeInfo {
  nodeId: string;
  /** When the node's process started, ms since the epoch. */
  startedAtMs: number;
  /** Its last heartbeat, ms since the epoch (the store's clock where it has one). */
  heartbeatAtMs: number;
  /** Grows with every heartbeat of one process: the record's version. */
  version: number;
  /** Facts the node publishes about itself (addresses, roles). */
  meta: Record<string, string>;
}

/** Node liveness: each node heartbeats with a TTL; a node whose heartbeat lapsed is not listed. */
export interface NodeRegistry {
  readonly nodeId: string;
  /** Heartbeats now and then periodically until close(). */
  start(): void;
  /** One heartbeat now; resolves false when it could not be recorded. Never rejects. */
  heartbeat(): Promise<boolean>;
  /**
   * Nodes whose heartbeat has not lapsed, this one included once it has beaten. When the shared
   * store cannot be asked, the last list known. Never rejects.
   */
  liveNodes(): Promise<NodeInfo[]>;
  /** Stops heartbeating and removes this node's entry. */
  close(): Promise<void>;
}
