import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deriveVirtualRouterId, keepalivedConfig, validateKeepalivedOptions, type KeepalivedOptionsInput } from '../../../src/cluster/keepalived-config.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const hasKeepalived = spawnSync('keepalived', ['--version']).status === 0;
/** keepalived -t warns about a device this host lacks: check against one it has. */
const DEV = Object.keys(networkInterfaces()).find((d) => d !== 'lo') ?? 'lo';

const base: KeepalivedOptionsInput = {
  nodeId: 'sip1',
  vips: ['198.18.0.100'],
  dev: 'eth0',
  sourceAddress: '198.18.0.11',
  peers: ['198.18.0.12'],
  healthUrl: 'http://198.18.0.11:8080/health',
};

/** keepalived's own parser: exit 0 and nothing on stderr for a config it accepts. */
function keepalivedAccepts(text: string): { ok: boolean; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-ka-unit-'));
  try {
    const f = join(dir, 'keepalived.conf');
    writeFileSync(f, text);
    const r = spawnSync('keepalived', ['-t', '-f', f], { encoding: 'utf8' });
    return { ok: r.status === 0 && !r.stderr.trim(), out: r.stderr + r.stdout };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The body of `vrrp_instance NAME { ... }` blocks, in order. */
function instances(text: string): string[] {
  return [...text.matchAll(/vrrp_instance (\S+) \{\n([\s\S]*?)\n\}/g)].map((m) => m[2]!);
}

describe('keepalived configuration from Tandem options', () => {
  it('a signalling node: VRRPv3, 20 ms adverts, unicast peers, nopreempt, health check, realtime priority', () => {
    const text = keepalivedConfig(base);
    expect(text).toContain('  vrrp_version 3\n');
    expect(text).toContain('  vrrp_rt_priority 50\n');
    expect(text).toContain('  enable_script_security\n');
    expect(text).toContain('  script "/usr/bin/curl -fsS -m 1 -o /dev/null http://198.18.0.11:8080/health"\n');
    const [inst, ...more] = instances(text);
    expect(more).toHaveLength(0);
    expect(inst).toContain('  state BACKUP\n');
    expect(inst).toContain('  interface eth0\n');
    expect(inst).toContain('  advert_int 0.02\n');
    expect(inst).toContain('  nopreempt\n');
    expect(inst).toContain('  priority 250\n');
    expect(inst).toContain('  unicast_src_ip 198.18.0.11\n');
    expect(inst).toContain('  unicast_peer {\n    198.18.0.12\n  }');
    expect(inst).toContain('  virtual_ipaddress {\n    198.18.0.100/32 dev eth0\n  }');
    expect(inst).toContain('  track_script {\n    tandem_health_sip1\n  }');
    expect(inst).toMatch(/ {2}virtual_router_id (\d+)\n/);
    expect(inst).not.toContain('notify');
  });

  it('options: advert interval, preempt delay or always, notify, prefix, no health check, no rt priority', () => {
    const t1 = keepalivedConfig({ ...base, advertIntervalMs: 100, preempt: 'delay', preemptDelaySec: 30, notify: '/usr/local/bin/tandem-notify media1', vipPrefixLength: 24, rtPriority: 0, healthUrl: undefined });
    expect(t1).toContain('  advert_int 0.1\n');
    expect(t1).toContain('  preempt_delay 30\n');
    expect(t1).not.toContain('nopreempt');
    expect(t1).toContain('  notify "/usr/local/bin/tandem-notify media1"\n');
    expect(t1).toContain('198.18.0.100/24 dev eth0');
    expect(t1).not.toContain('vrrp_rt_priority');
    expect(t1).not.toContain('vrrp_script');
    expect(t1).not.toContain('track_script');
    const t2 = keepalivedConfig({ ...base, preempt: 'always', advertIntervalMs: 1000 });
    expect(t2).not.toMatch(/preempt/);
    expect(t2).toContain('  advert_int 1.0\n');
  });

  it('active/active media: both nodes derive the same router id per VIP, own VIP at the higher priority', () => {
    const a = keepalivedConfig({ ...base, nodeId: 'media1', role: 'media', vips: ['198.18.0.200'], standbyVips: ['198.18.0.201'] });
    const b = keepalivedConfig({ ...base, nodeId: 'media2', role: 'media', vips: ['198.18.0.201'], standbyVips: ['198.18.0.200'], sourceAddress: '198.18.0.12', peers: ['198.18.0.11'] });
    const idOf = (text: string, vip: string): [number, number] => {
      const inst = instances(text).find((i) => i.includes(`${vip}/32`))!;
      return [Number(/virtual_router_id (\d+)/.exec(inst)![1]), Number(/priority (\d+)/.exec(inst)![1])];
    };
    expect(idOf(a, '198.18.0.200')[0]).toBe(idOf(b, '198.18.0.200')[0]);
    expect(idOf(a, '198.18.0.201')[0]).toBe(idOf(b, '198.18.0.201')[0]);
    expect(idOf(a, '198.18.0.200')[0]).not.toBe(idOf(a, '198.18.0.201')[0]);
    expect(idOf(a, '198.18.0.200')[1]).toBeGreaterThan(idOf(b, '198.18.0.200')[1]);
    expect(idOf(b, '198.18.0.201')[1]).toBeGreaterThan(idOf(a, '198.18.0.201')[1]);
    // The standby instance waits out a start-up grace (a check failing while keepalived is younger), the own one does not.
    const [own, standby] = instances(a);
    expect(a).toContain('vrrp_script tandem_standby_grace_media1 {\n  script "/bin/sh -c \'set -- $(cat /proc/$PPID/stat); [ $(( $(cut -d. -f1 /proc/uptime) - ${22} / $(getconf CLK_TCK) )) -ge 3 ]\'"\n');
    expect(standby).toContain('  track_script {\n    tandem_health_media1\n    tandem_standby_grace_media1\n  }');
    expect(own).toContain('  track_script {\n    tandem_health_media1\n  }');
    expect(keepalivedConfig({ ...base, healthUrl: undefined, vips: ['198.18.0.200'], standbyVips: ['198.18.0.201'], standbyGraceSec: 5 })).toContain(' -ge 5 ]');
    expect(keepalivedConfig({ ...base, vips: ['198.18.0.200'], standbyVips: ['198.18.0.201'], standbyGraceSec: 0 })).not.toContain('grace');
  });

  it('derived router ids: 1-255, order of addresses does not matter, given id wins', () => {
    for (let i = 0; i < 500; i++) {
      const id = deriveVirtualRouterId('c', 'media', [`198.18.${i >> 8}.${i & 255}`]);
      expect(id).toBeGreaterThanOrEqual(1);
      expect(id).toBeLessThanOrEqual(255);
    }
    expect(deriveVirtualRouterId('c', 'r', ['198.18.0.1', '198.18.0.2'])).toBe(deriveVirtualRouterId('c', 'r', ['198.18.0.2', '198.18.0.1']));
    expect(keepalivedConfig({ ...base, virtualRouterId: 77 })).toContain('  virtual_router_id 77\n');
  });

  it('bad options are refused with every problem named', () => {
    const r = validateKeepalivedOptions({ ...base, nodeId: 'bad id', vips: ['198.18.0.11', 'x'], peers: [], advertIntervalMs: 25, priority: 255, dev: 'a-device-name-far-too-long', notify: 'say "hi"' });
    expect(r.ok).toBe(false);
    const errors = r.ok ? [] : r.errors.join('\n');
    for (const field of ['nodeId', 'vips.1', 'peers', 'advertIntervalMs', 'priority', 'dev']) expect(errors).toContain(`${field}:`);
    expect(() => keepalivedConfig({ ...base, peers: ['198.18.0.11'] })).toThrow(/own address/);
    expect(() => keepalivedConfig({ ...base, standbyVips: ['198.18.0.100'] })).toThrow(/listed twice/);
  });

  describe.skipIf(!hasKeepalived)('keepalived -t accepts the generated text', () => {
    it('every variant', () => {
      for (const o of [
        base,
        { ...base, healthUrl: undefined, rtPriority: 0 },
        { ...base, preempt: 'delay' as const, preemptDelaySec: 10, notify: '/usr/bin/logger -t tandem' },
        { ...base, role: 'media', vips: ['198.18.0.200', '198.18.0.202'], standbyVips: ['198.18.0.201'], advertIntervalMs: 50 },
      ]) {
        const r = keepalivedAccepts(keepalivedConfig({ ...o, dev: DEV }));
        expect(r.out).toBe('');
        expect(r.ok).toBe(true);
      }
    });
  });

  it('tandem cluster keepalived-config: from a tandem start YAML, and a clear error without peers', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tandem-ka-cli-'));
    try {
      const yaml = join(dir, 'tandem.yaml');
      writeFileSync(yaml, 'admin: 198.18.0.11:8080\ncluster:\n  nodeId: sip1\n  vips: [198.18.0.100]\n  takeover: keepalived\nsignalling:\n  listen: ["udp:198.18.0.11:5060", "udp:198.18.0.100:5060"]\n');
      const run = (...args: string[]) => spawnSync(process.execPath, [join(ROOT, 'bin/tandem.mjs'), 'cluster', 'keepalived-config', '--config', yaml, ...args], { encoding: 'utf8', env: { ...process.env, TANDEM_FROM_SOURCE: '1' } });
      const ok = run('--dev', DEV, '--peer', '198.18.0.12', ...(hasKeepalived ? ['--check'] : []));
      expect(ok.stderr).toBe('');
      expect(ok.status).toBe(0);
      expect(ok.stdout).toContain('router_id tandem_sip1');
      expect(ok.stdout).toContain('unicast_src_ip 198.18.0.11');
      expect(ok.stdout).toContain(`198.18.0.100/32 dev ${DEV}`);
      expect(ok.stdout).toContain('http://198.18.0.11:8080/health');
      const bad = run('--dev', 'eth1');
      expect(bad.status).toBe(2);
      expect(bad.stderr).toContain('peers: at least one peer address');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
