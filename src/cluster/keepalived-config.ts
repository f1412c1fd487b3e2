/**
 * keepalived configuration for a Tandem node in `--takeover keepalived` mode: VRRP moves the
 * node's virtual addresses, the node has its sockets bound on them in advance
 * (`net.ipv4.ip_nonlocal_bind=1`, see address-takeover.ts), so a takeover costs only the VRRP
 * detection and the address move.
 *
 * What the generated text sets, and why:
 * - **VRRPv3 with a short advert interval** (default 20 ms): a backup declares the master dead
 *   after 3 adverts plus the skew time `(256 - priority) / 256` of an advert (RFC 9568 §6.1,
 *   Master_Down_Interval), so 72 ms at priority 100 (measured 71 / 72 / 81 ms on a 2-core VM,
 *   `../../../shared/HA-NOTES.md`) and 60.5 ms at the default 250; VRRPv2 only has whole seconds.
 *   VRRPv3 counts the interval in centiseconds, so 10 ms steps.
 * - **`vrrp_rt_priority`**: the VRRP process runs with a realtime scheduling priority, so a
 *   CPU-bound Tandem does not delay its adverts and make the peer take the address (fast adverts
 *   flap under load without it, HA-NOTES).
 * - **Unicast peers**: no multicast needed (clouds and many switches drop it); each side names
 *   its own source address and the peer's.
 * - **`state BACKUP` + `nopreempt`** (default): a node that comes back does not take the
 *   address (and the calls) back mid-call; the higher priority only decides who starts as master.
 *   `preemptDelaySec` gives the address back after a delay instead; `preempt: 'always'` at once.
 * - **`track_script` on the node's admin `/health`** (readable without a token): a node whose
 *   process died or hangs while the host stays up goes to FAULT and releases the address.
 * - **`notify`**: a command run at every state change with keepalived's arguments appended
 *   (`INSTANCE <name> MASTER|BACKUP|FAULT|STOP <priority>`). The node needs no call: it serves
 *   whatever arrives on its pre-bound sockets and watches its interfaces for the address itself
 *   (media nodes every 10 ms; signalling nodes every 50 ms, to expect a dead peer's INVITE
 *   retransmissions); the command is for the operator's log or the lab's timeline.
 * - One `vrrp_instance` for the node's own VIPs and one for its standby VIPs (active/active media:
 *   each node's own VIP is the other's standby VIP), each with a virtual router id derived from
 *   the cluster name and the addresses, so both nodes derive the same one. The standby instance
 *   stays in FAULT for `standbyGraceSec` after keepalived starts (a check with `init_fail`), so a
 *   node that starts a little earlier does not take both VIPs and, with `nopreempt`, keep them.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { z } from 'zod';

const ipv4 = z.string().refine((s) => isIP(s) === 4, { message: 'expected an IPv4 address' });
const name = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - (at most 64)');

/** Inputs of {@link keepalivedConfig}, derived from the node's Tandem config by `tandem cluster keepalived-config`. */
export const keepalivedOptionsSchema = z
  .object({
    /** The node's id (`cluster.nodeId`); names the router and the scripts. */
    nodeId: name,
    /** Cluster name (`cluster.name`): part of the derived virtual router id. @default 'tandem' */
    clusterName: name.default('tandem'),
    /** What the node is (`signalling`, `media`): part of instance names and of the derived router id. @default 'node' */
    role: z.string().regex(/^[a-z0-9_-]{1,32}$/, 'lower-case letters, digits, _ -').default('node'),
    /** Addresses this node serves and prefers (`cluster.vips` / `tandem media --vip`). */
    vips: z.array(ipv4).min(1, 'at least one VIP'),
    /** Addresses this node only stands by for (`tandem media --standby-vip`): own instance, lower priority. @default [] */
    standbyVips: z.array(ipv4).default([]),
    /** Network device VRRP runs on and the VIPs are added to (keepalived `interface`). */
    dev: z.string().regex(/^[A-Za-z0-9_.:@-]{1,15}$/, 'a network device name (at most 15 characters)'),
    /** This node's own address on `dev`: the source of its adverts (`unicast_src_ip`). */
    sourceAddress: ipv4,
    /** The other nodes' own addresses (`unicast_peer`). */
    peers: z.array(ipv4).min(1, 'at least one peer address'),
    /**
     * VRRP priority for the node's own VIPs, 1-254. With `nopreempt` it only decides who starts as
     * master when both start together; it also sets how long a backup waits after the last advert:
     * 3 adverts + (256 - priority) / 256 of one (RFC 9568 §6.1), so high values take over sooner
     * (250: 60.5 ms with 20 ms adverts; 100: 72 ms). @default 250
     */
    priority: z.number().int().min(1).max(254).default(250),
    /** VRRP priority for its standby VIPs (below the owner's `priority`). @default 240 */
    standbyPriority: z.number().int().min(1).max(254).default(240),
    /** Advert interval, ms; VRRPv3 counts centiseconds, so a multiple of 10. @default 20 */
    advertIntervalMs: z.number().int().min(10).max(40_950).multipleOf(10, 'a multiple of 10 ms (VRRPv3 counts centiseconds)').default(20),
    /** Virtual router id of the own VIPs' instance, 1-255. @default derived from cluster, role and VIPs */
    virtualRouterId: z.number().int().min(1).max(255).optional(),
    /** Prefix length the VIPs are added with. @default 32 */
    vipPrefixLength: z.number().int().min(1).max(32).default(32),
    /**
     * When the address goes back to a returning node with a higher priority: `never` (`nopreempt`;
     * it only moves when the holder fails), `delay` (after `preemptDelaySec`), `always` (at once).
     * @default 'never'
     */
    preempt: z.enum(['never', 'delay', 'always']).default('never'),
    /** With `preempt: 'delay'`, seconds (keepalived allows up to 1000). @default 60 */
    preemptDelaySec: z.number().int().min(1).max(1000).default(60),
    /** The node's health URL (admin `/health`); no track_script when absent. */
    healthUrl: z.string().url().optional(),
    /** How often the health check runs, seconds. @default 1 */
    healthIntervalSec: z.number().int().min(1).max(3600).default(1),
    /** Failed checks in a row before FAULT (the address is released). @default 2 */
    healthFall: z.number().int().min(1).max(100).default(2),
    /** Passed checks in a row before the node may hold the address again. @default 2 */
    healthRise: z.number().int().min(1).max(100).default(2),
    /**
     * Seconds after keepalived starts before this node's standby-VIP instance may become master:
     * it tracks a check that starts failed (`init_fail`) and must pass this many times in a row
     * (one a second), so when both nodes start together each takes its own VIP first, however
     * their start-up jitters (active/active; the lease mode's standby grace). 0 = none. @default 3
     */
    standbyGraceSec: z.number().int().min(0).max(600).default(3),
    /** The HTTP client the health script runs. @default '/usr/bin/curl' */
    curlPath: z.string().startsWith('/', 'an absolute path').default('/usr/bin/curl'),
    /** Command run at every state change (keepalived appends: INSTANCE <name> <state> <priority>). */
    notify: z.string().min(1).optional(),
    /** Realtime priority of the VRRP process (`vrrp_rt_priority`, 1-99); 0 leaves it out. @default 50 */
    rtPriority: z.number().int().min(0).max(99).default(50),
  })
  .strict()
  .superRefine((o, ctx) => {
    const seen = new Set<string>();
    for (const a of [...o.vips, ...o.standbyVips]) {
      if (seen.has(a)) ctx.addIssue({ code: 'custom', path: ['vips'], message: `${a} is listed twice (own and standby VIPs must differ)` });
      seen.add(a);
    }
    for (const a of [o.sourceAddress, ...o.peers]) {
      if (seen.has(a)) ctx.addIssue({ code: 'custom', path: ['peers'], message: `${a} is a VIP: a node's own and peer addresses must not be VIPs` });
    }
    if (o.peers.includes(o.sourceAddress)) ctx.addIssue({ code: 'custom', path: ['peers'], message: `${o.sourceAddress} is this node's own address` });
    if (o.notify && /["\n]/.test(o.notify)) ctx.addIssue({ code: 'custom', path: ['notify'], message: 'must not contain double quotes or newlines' });
  });

export type KeepalivedOptionsInput = z.input<typeof keepalivedOptionsSchema>;
export type KeepalivedOptions = z.output<typeof keepalivedOptionsSchema>;

/** Validates the options; every problem as `path: message`. */
export function validateKeepalivedOptions(input: KeepalivedOptionsInput): { ok: true; value: KeepalivedOptions } | { ok: false; errors: string[] } {
  const r = keepalivedOptionsSchema.safeParse(input);
  if (r.success) return { ok: true, value: r.data };
  return { ok: false, errors: r.error.issues.map((i) => `${i.path.join('.') || '(options)'}: ${i.message}`) };
}

/**
 * A virtual router id (1-255) both nodes of a pair derive alike: a hash of the cluster name, the
 * role and the sorted addresses. Two different VIP sets may collide (1 in 255): give
 * `virtualRouterId` then.
 */
export function deriveVirtualRouterId(clusterName: string, role: string, vips: readonly string[]): number {
  const h = createHash('sha256').update(`${clusterName}|${role}|${[...vips].sort().join(',')}`).digest();
  return (h.readUInt32BE(0) % 255) + 1;
}

/** keepalived instance/script names: letters, digits and `_` only. */
function ident(s: string): string {
  return s.replace(/[^A-Za-z0-9_]/g, '_');
}

/**
 * The keepalived.conf text for one node. Throws with every problem listed when the options are
 * invalid (use {@link validateKeepalivedOptions} first to get them as a list).
 */
export function keepalivedConfig(input: KeepalivedOptionsInput): string {
  const v = validateKeepalivedOptions(input);
  if (!v.ok) throw new Error(`invalid keepalived options:\n${v.errors.join('\n')}`);
  const o = v.value;
  const node = ident(o.nodeId);
  const script = `tandem_health_${node}`;
  const advertSec = (o.advertIntervalMs / 1000).toFixed(2).replace(/0$/, '');
  const lines: string[] = [
    `# keepalived configuration for Tandem node ${o.nodeId} (${o.role}, cluster ${o.clusterName}).`,
    '# Generated by `tandem cluster keepalived-config`: regenerate rather than edit.',
    '# The node binds its VIPs in advance: set net.ipv4.ip_nonlocal_bind=1 on this host.',
    'global_defs {',
    `  router_id tandem_${node}`,
    '  vrrp_version 3',
    ...(o.rtPriority > 0 ? [`  vrrp_rt_priority ${o.rtPriority}`] : []),
    '  enable_script_security',
    '  script_user root',
    '}',
  ];
  if (o.healthUrl) {
    lines.push(
      '',
      `vrrp_script ${script} {`,
      `  script "${o.curlPath} -fsS -m 1 -o /dev/null ${o.healthUrl}"`,
      `  interval ${o.healthIntervalSec}`,
      `  timeout ${o.healthIntervalSec + 1}`,
      `  fall ${o.healthFall}`,
      `  rise ${o.healthRise}`,
      '}',
    );
  }
  const grace = `tandem_standby_grace_${node}`;
  if (o.standbyVips.length && o.standbyGraceSec > 0) {
    lines.push(
      '',
      `vrrp_script ${grace} {`,
      // Fails while keepalived's VRRP process (the script's parent) is younger than the grace:
      // field 22 of /proc/PID/stat is its start in clock ticks since boot.
      `  script "/bin/sh -c 'set -- $(cat /proc/$PPID/stat); [ $(( $(cut -d. -f1 /proc/uptime) - \${22} / $(getconf CLK_TCK) )) -ge ${o.standbyGraceSec} ]'"`,
      '  interval 1',
      '  timeout 2',
      '  fall 1',
      '  rise 1',
      '  init_fail',
      '}',
    );
  }
  const instance = (suffix: string, vips: string[], priority: number, routerId: number, scripts: string[]): void => {
    lines.push(
      '',
      `vrrp_instance tandem_${ident(o.role)}_${suffix} {`,
      '  state BACKUP',
      `  interface ${o.dev}`,
      `  virtual_router_id ${routerId}`,
      `  priority ${priority}`,
      `  advert_int ${advertSec}`,
      ...(o.preempt === 'never' ? ['  nopreempt'] : o.preempt === 'delay' ? [`  preempt_delay ${o.preemptDelaySec}`] : []),
      `  unicast_src_ip ${o.sourceAddress}`,
      '  unicast_peer {',
      ...o.peers.map((p) => `    ${p}`),
      '  }',
      '  virtual_ipaddress {',
      ...vips.map((a) => `    ${a}/${o.vipPrefixLength} dev ${o.dev}`),
      '  }',
      ...(scripts.length ? ['  track_script {', ...scripts.map((x) => `    ${x}`), '  }'] : []),
      ...(o.notify ? [`  notify "${o.notify}"`] : []),
      '}',
    );
  };
  const ownKey = [...o.vips].sort().join(',');
  const standbyKey = [...o.standbyVips].sort().join(',');
  let ownId = o.virtualRouterId ?? deriveVirtualRouterId(o.clusterName, o.role, o.vips);
  let standbyId = deriveVirtualRouterId(o.clusterName, o.role, o.standbyVips);
  // Two sets that hash alike: the one with the greater key moves up one, on both nodes alike
  // (the peer has the same two sets, swapped).
  if (o.standbyVips.length && standbyId === ownId) {
    if (standbyKey > ownKey) standbyId = (standbyId % 255) + 1;
    else if (o.virtualRouterId === undefined) ownId = (ownId % 255) + 1;
    else standbyId = (standbyId % 255) + 1;
  }
  const health = o.healthUrl ? [script] : [];
  instance(ident(o.vips[0]!), o.vips, o.priority, ownId, health);
  if (o.standbyVips.length) instance(ident(o.standbyVips[0]!), o.standbyVips, o.standbyPriority, standbyId, o.standbyGraceSec > 0 ? [...health, grace] : health);
  return lines.join('\n') + '\n';
}
