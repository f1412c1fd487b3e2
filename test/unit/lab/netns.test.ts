import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { keepalivedArgs, keepalivedFiles, notifyCommand, readVrrpEvents } from '../../../src/lab/netns/keepalived.js';
import { keepalivedParts, netnsLabNetwork } from '../../../src/lab/netns/lab-network-netns.js';
import { labId, labPrefix, namespaceName, netnsDir } from '../../../src/lab/netns/netns.js';
import { labPlan } from '../../../src/lab/lab-plan.js';
import type { LabTopology } from '../../../src/lab/lab.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-netns-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function topology(): LabTopology {
  const network = netnsLabNetwork();
  const plan = labPlan({ mode: 'netns', dir, node: '/usr/bin/node', tandemBin: '/x/bin/tandem.mjs', adminToken: 't'.repeat(32), advertMs: 20, sentinelDownAfterMs: 1000, namespaceOf: (n) => network.namespaceOf(dir, n) });
  return { version: 1, mode: 'netns', dir, createdAt: '', adminToken: 't', addresses: plan.addresses, parts: plan.parts, files: [], linksDown: [] };
}

describe('lab network names', () => {
  it('derived from the lab dir: stable, prefixed, within the kernel\'s 15-character link names', () => {
    expect(labId(dir)).toMatch(/^[0-9a-f]{6}$/);
    expect(labId(dir)).toBe(labId(`${dir}/`));
    expect(labId(dir)).not.toBe(labId(`${dir}-other`));
    expect(namespaceName(dir, 'sig1')).toBe(`${labPrefix(dir)}-sig1`);
    expect(`${labPrefix(dir).replace(/-/g, '')}h`.length).toBeLessThanOrEqual(15);
  });

  it('keepalived runs in the foreground with pid files of its own', () => {
    const a = keepalivedArgs(dir, 'media1');
    const f = keepalivedFiles(dir, 'media1');
    expect(a.slice(0, 5)).toEqual(['-n', '-l', '-D', '-G', '-P']);
    for (const [flag, path] of [['-f', f.config], ['-p', f.pid], ['-r', f.vrrpPid], ['-c', f.checkersPid], ['-b', f.bfdPid]]) expect(a[a.indexOf(flag!) + 1]).toBe(path);
    expect(new Set(Object.values(f)).size).toBe(5);
    expect(keepalivedFiles(dir, 'media2').pid).not.toBe(f.pid);
  });

  it('VRRP events: the notify line format is read back, junk lines skipped', () => {
    const cmd = notifyCommand(dir, 'sig1');
    expect(cmd).toBe(`${join(netnsDir(dir), 'vrrp-notify.sh')} sig1`);
    expect(readFileSync(cmd.split(' ')[0]!, 'utf8')).toContain('date +%s%3N');
    mkdirSync(netnsDir(dir), { recursive: true });
    writeFileSync(join(netnsDir(dir), 'vrrp-events.log'), '1700000000123 sig1 INSTANCE tandem_signalling_198_18_0_10 BACKUP 250\ngarbage\n\n1700000000456 sig1 INSTANCE tandem_signalling_198_18_0_10 MASTER 250\n');
    expect(readVrrpEvents(dir)).toEqual([
      { tMs: 1700000000123, node: 'sig1', instance: 'tandem_signalling_198_18_0_10', state: 'BACKUP', priority: 250 },
      { tMs: 1700000000456, node: 'sig1', instance: 'tandem_signalling_198_18_0_10', state: 'MASTER', priority: 250 },
    ]);
  });
});

describe('keepalived parts of the lab topology', () => {
  const topo = topology();
  const parts = keepalivedParts(dir, topo, 20);

  it('one per signalling and media node, in its namespace, with peers of its role and its VIPs', () => {
    expect(parts.map((p) => p.name).sort()).toEqual(['keepalived-media1', 'keepalived-media2', 'keepalived-sig1', 'keepalived-sig2']);
    for (const p of parts) {
      const node = p.name.replace('keepalived-', '');
      expect(p.role).toBe('keepalived');
      expect(p.namespace).toBe(namespaceName(dir, node));
      expect(p.command).toBe('keepalived');
      const conf = readFileSync(keepalivedFiles(dir, node).config, 'utf8');
      const me = topo.parts.find((x) => x.name === node)!;
      const peers = topo.parts.filter((x) => x.role === me.role && x.name !== node);
      expect(conf).toContain(`unicast_src_ip ${me.address}`);
      for (const peer of peers) expect(conf).toContain(`    ${peer.address}\n`);
      for (const vip of me.vips) expect(conf).toContain(`${vip}/32 dev eth0`);
      expect(conf).toContain(`${me.adminUrl}/health`);
      expect(conf).toContain('advert_int 0.02');
      expect(conf).toContain('nopreempt');
      expect(conf).toContain(`notify "${notifyCommand(dir, node)}"`);
    }
  });

  it('the first signalling node starts as master (250 vs 240); each media node owns its VIP at 250 and stands by for the other\'s at 240', () => {
    const conf = (n: string) => readFileSync(keepalivedFiles(dir, n).config, 'utf8');
    expect(conf('sig1')).toMatch(/priority 250\n/);
    expect(conf('sig2')).toMatch(/priority 240\n/);
    const [v1, v2] = topo.addresses.mediaVips;
    const prio = (n: string, vip: string) => Number(/priority (\d+)/.exec(conf(n).split('vrrp_instance').find((b) => b.includes(`${vip}/32`))!)![1]);
    expect(prio('media1', v1)).toBe(250);
    expect(prio('media1', v2)).toBe(240);
    expect(prio('media2', v2)).toBe(250);
    expect(prio('media2', v1)).toBe(240);
  });

  it.skipIf(spawnSync('keepalived', ['--version']).status !== 0 || !networkInterfaces()['eth0'])('keepalived -t accepts every generated file', () => {
    for (const p of parts) {
      const r = spawnSync('keepalived', ['-t', '-f', keepalivedFiles(dir, p.name.replace('keepalived-', '')).config], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    }
  });
});

describe('preflight: clear errors before anything is made', () => {
  const run = (code: string, opts: { user?: boolean; path?: string } = {}) => {
    const node = ['--import', join(process.cwd(), 'node_modules/tsx/dist/esm/index.mjs'), '-e', `import(${JSON.stringify(join(process.cwd(), 'src/lab/netns/netns.ts'))}).then((m) => { try { ${code}; console.log('OK') } catch (e) { console.log(e.code + ' ' + e.message) } })`];
    const [cmd, args] = opts.user ? ['setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, ...node]] : [process.execPath, node];
    return spawnSync(cmd, args, { encoding: 'utf8', cwd: tmpdir(), env: { ...process.env, HOME: tmpdir(), ...(opts.path ? { PATH: opts.path } : {}) } }).stdout.trim();
  };
  const root = process.getuid?.() === 0;

  it.skipIf(!root || spawnSync('setpriv', ['--version']).status !== 0)('not root', () => {
    expect(run('m.preflightNetns({})', { user: true })).toBe('NETNS_ERR_NOT_ROOT network namespaces need root: run as root, or use --loopback');
  });

  it.skipIf(!root)('keepalived missing', () => {
    const bin = mkdtempSync(join(tmpdir(), 'tandem-netns-path-'));
    try {
      for (const tool of ['ip', 'sh']) {
        const where = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
        spawnSync('ln', ['-s', where, join(bin, tool)]);
      }
      expect(run('m.preflightNetns({ keepalived: true })', { path: bin })).toMatch(/^NETNS_ERR_MISSING_TOOL keepalived is missing: apt-get install keepalived/);
      expect(run(`m.preflightNetns({ keepalived: false, dir: ${JSON.stringify(bin)} })`, { path: bin })).toBe('OK');
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });
});
