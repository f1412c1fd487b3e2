import type { Command } from 'commander';
import { labDown, labHeal, labKill, labRevive, labStatus, labUp, readTopology, type KillHow } from '../../lab/lab.js';
import type { LabMode } from '../../lab/lab-plan.js';
import type { LabNetwork } from '../../lab/lab-network.js';
import { EXPERIMENTS, runExperiment, type ExperimentName } from '../../lab/experiments/run-experiment.js';

const DEFAULT_DIR = 'tandem-lab';

async function networkFor(mode: LabMode | undefined): Promise<LabNetwork | undefined> {
  if (mode !== 'netns') return undefined;
  const { netnsLabNetwork } = await import('../../lab/netns/lab-network-netns.js');
  return netnsLabNetwork();
}

function modeOf(f: { netns?: boolean; loopback?: boolean }): LabMode {
  if (f.netns && f.loopback) throw new Error('--netns or --loopback, not both');
  if (f.netns) return 'netns';
  if (f.loopback) return 'loopback';
  return process.getuid?.() === 0 ? 'netns' : 'loopback';
}

function fail(err: unknown): never {
  console.error(`tandem lab: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}

/** `tandem lab`: the published HA topology on one machine, fault injection, experiment reports. */
export function registerLabCommand(program: Command): void {
  const lab = program.command('lab').description('the published HA topology on one machine: up, status, kill, revive, run experiments, down');

  lab
    .command('up')
    .description('start two signalling nodes, two media nodes, Redis + replica + 3 Sentinels, two PBXs and phones; returns once all are healthy')
    .option('--netns', 'each node in its own network namespace, keepalived (VRRPv3) moving the VIPs (default as root)')
    .option('--loopback', 'every part on a 127.18.0.x address, VIPs moved by Redis leases (no root needed)')
    .option('--dir <dir>', 'lab directory: topology.json, logs, reports', DEFAULT_DIR)
    .option('--advert-ms <ms>', 'keepalived advert interval (netns)', '20')
    .action(async (f: { netns?: boolean; loopback?: boolean; dir: string; advertMs: string }) => {
      try {
        const mode = modeOf(f);
        const network = await networkFor(mode);
        const started = Date.now();
        const topo = await labUp({ mode, dir: f.dir, advertMs: Number(f.advertMs), say: (l) => console.log(`  ${l}`), ...(network ? { network } : {}) });
        console.log(`lab up (${mode}) in ${((Date.now() - started) / 1000).toFixed(1)} s: ${topo.parts.length} parts, topology in ${topo.dir}/topology.json`);
        console.log(`  signalling VIP ${topo.addresses.sigVip}:5060 (domain lab.test), media VIPs ${topo.addresses.mediaVips.join(', ')}`);
        console.log(`  admin token: ${topo.adminToken}`);
      } catch (err) {
        fail(err);
      }
    });

  lab
    .command('status')
    .description('who is up and who holds which VIP')
    .option('--dir <dir>', 'lab directory', DEFAULT_DIR)
    .option('--json', 'machine-readable')
    .action(async (f: { dir: string; json?: boolean }) => {
      try {
        const network = await networkFor(readTopology(f.dir)?.mode);
        const s = await labStatus(f.dir, network);
        if (f.json) {
          console.log(JSON.stringify({ mode: s.topology.mode, holders: s.holders, redisPrimary: s.redisPrimary, parts: s.parts }, null, 2));
          return;
        }
        console.log(`lab ${s.topology.dir} (${s.topology.mode}), up since ${s.topology.createdAt}`);
        for (const [vip, holder] of Object.entries(s.holders)) console.log(`  VIP ${vip.padEnd(14)} held by ${holder ?? 'NOBODY'}`);
        console.log(`  redis primary: ${s.redisPrimary ?? 'UNKNOWN (no Sentinel answers)'}`);
        const rows = [['PART', 'ROLE', 'STATE', 'PID', 'ADDRESS', 'HOLDS', 'ADMIN']];
        for (const p of s.parts) rows.push([p.name, p.role, p.state, String(p.pid ?? '-'), p.address, p.holds.join(',') || '-', p.adminUrl ?? '-']);
        const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
        for (const r of rows) console.log('  ' + r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd());
      } catch (err) {
        fail(err);
      }
    });

  lab
    .command('kill <name>')
    .description('fail a part: sigkill (a node with its keepalived, as a host switched off), sigstop (frozen), link-down (netns)')
    .option('--dir <dir>', 'lab directory', DEFAULT_DIR)
    .option('--how <how>', 'sigkill, sigstop or link-down', 'sigkill')
    .action(async (name: string, f: { dir: string; how: string }) => {
      try {
        if (!['sigkill', 'sigstop', 'link-down'].includes(f.how)) throw new Error('--how is sigkill, sigstop or link-down');
        await labKill(f.dir, name, f.how as KillHow, await networkFor(readTopology(f.dir)?.mode));
        console.log(`${name}: ${f.how}`);
      } catch (err) {
        fail(err);
      }
    });

  lab
    .command('revive <name>')
    .description('bring a failed part back (link up, SIGCONT or a fresh start); `all`: every failed part')
    .option('--dir <dir>', 'lab directory', DEFAULT_DIR)
    .action(async (name: string, f: { dir: string }) => {
      try {
        const network = await networkFor(readTopology(f.dir)?.mode);
        if (name === 'all') {
          const revived = await labHeal(f.dir, network);
          console.log(revived.length ? `revived: ${revived.join(', ')}` : 'nothing had failed');
          return;
        }
        await labRevive(f.dir, name, network);
        console.log(`${name}: up`);
      } catch (err) {
        fail(err);
      }
    });

  lab
    .command('down')
    .description('remove every process, namespace and file the lab made (reports stay)')
    .option('--dir <dir>', 'lab directory', DEFAULT_DIR)
    .option('--netns', 'also look for namespaces of a lab whose topology.json is gone')
    .action(async (f: { dir: string; netns?: boolean }) => {
      try {
        const mode = readTopology(f.dir)?.mode ?? (f.netns ? 'netns' : undefined);
        const removed = await labDown(f.dir, await networkFor(mode));
        console.log(removed.length ? `removed:\n  ${removed.join('\n  ')}` : 'nothing to remove');
      } catch (err) {
        fail(err);
      }
    });

  lab
    .command('run <experiment>')
    .description(`run an experiment on the lab that is up and write DIR/reports/NAME-TIME/: ${EXPERIMENTS.join(', ')}`)
    .option('--dir <dir>', 'lab directory', DEFAULT_DIR)
    .option('--calls <n>', 'calls established before the fault')
    .option('--rate <r>', 'calls per second')
    .option('--duration <sec>', 'call hold time, seconds')
    .option('--json', 'print the report as JSON at the end')
    .action(async (name: string, f: { dir: string; calls?: string; rate?: string; duration?: string; json?: boolean }) => {
      try {
        if (!(EXPERIMENTS as readonly string[]).includes(name)) throw new Error(`no experiment ${name}; one of ${EXPERIMENTS.join(', ')}`);
        const network = await networkFor(readTopology(f.dir)?.mode);
        const r = await runExperiment({
          dir: f.dir,
          name: name as ExperimentName,
          ...(f.calls ? { calls: Number(f.calls) } : {}),
          ...(f.rate ? { rate: Number(f.rate) } : {}),
          ...(f.duration ? { durationSec: Number(f.duration) } : {}),
          say: (l) => console.log(l),
          ...(network ? { network } : {}),
        });
        console.log(r.summary);
        console.log(`report: ${r.reportDir}`);
        if (f.json) console.log(JSON.stringify(r.result, null, 2));
        process.exit(r.passed ? 0 : 2);
      } catch (err) {
        fail(err);
      }
    });
}
