/** report.md: what was run, the figures beside the published ones, availability, the plots. */
import { PUBLISHED_MTTR_HA_SEC, PUBLISHED_MTTR_TRADITIONAL_SEC } from './published.js';
import { availabilityOf } from './figures.js';
import { formatAvailability, formatDuration, formatNumber, formatValue, mdCell, mdText } from './format.js';
import type { ComputedFigures, ExperimentData, Verdict } from './types.js';

/** Where the run happened; recorded beside every figure. */
export interface ReportEnvironment {
  host: string;
  cpus: string;
  memoryGb: number;
  kernel: string;
  node: string;
}

export interface PlotRef {
  file: string;
  caption: string;
}

const VERDICT_TEXT: Record<Verdict, string> = { better: 'better', worse: '**worse**', same: 'same', 'not measured': 'not measured' };
const MAX_EVENT_ROWS = 200;

const iso = (ms: number): string => (Number.isFinite(ms) ? new Date(ms).toISOString().replace('T', ' ').replace('Z', ' UTC') : 'unknown');
const orNot = (v: number | null, f: (n: number) => string): string => (v === null ? 'not measured' : f(v));
const count = (v: number | null): string => orNot(v, (n) => formatNumber(n));

/** `sig VIP 850 ms, media VIP 330 ms` (names when the lab gave them). */
function takeoverList(ms: number[], of: unknown): string {
  const names = Array.isArray(of) ? of : [];
  return ms.map((v, i) => (typeof names[i] === 'string' && names[i] ? `${names[i]} ${formatDuration(v)}` : formatDuration(v))).join(', ');
}

function table(head: string[], rows: string[][]): string[] {
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.map(mdCell).join(' | ')} |`), ''];
}

export function reportMarkdown(data: ExperimentData, c: ComputedFigures, env: ReportEnvironment, plots: PlotRef[]): string {
  const f = data.figures ?? {};
  const out: string[] = [];
  out.push(`# Experiment \`${mdCell(String(data.experiment))}\`, ${iso(data.startedAtMs)}`, '');
  if (data.description) out.push(mdText(data.description), '');

  const worse = c.comparisons.filter((x) => x.verdict === 'worse');
  const checks = Array.isArray(data.checks) ? data.checks : [];
  const failed = checks.filter((x) => !x.ok);
  const summary: string[] = [];
  if (c.callsEstablished !== null) summary.push(`${count(c.callsKept)} of ${count(c.callsEstablished)} established calls kept (${count(c.callsDropped)} dropped)`);
  if (c.takeoverMs.length) summary.push(`takeover ${takeoverList(c.takeoverMs, f.takeoverOf)}`);
  if (c.mediaGapMs) summary.push(`worst RTP gap p99 ${formatDuration(c.mediaGapMs.p99)}, max ${formatDuration(c.mediaGapMs.max)}`);
  if (c.availability) summary.push(`availability ${formatAvailability(c.availability.availability)}`);
  if (summary.length) out.push(`**Result:** ${summary.join('; ')}.`, '');
  if (checks.length) out.push(failed.length ? `**Checks: ${failed.length} of ${checks.length} failed.**` : `**Checks: all ${checks.length} passed.**`, '');
  if (worse.length) out.push(`**Worse than published:** ${worse.map((w) => mdText(w.label)).join('; ')}.`, '');

  out.push('## What was run', '');
  const runRows: string[][] = [
    ['experiment', String(data.experiment)],
    ['started', iso(data.startedAtMs)],
    ['ended', iso(data.endedAtMs)],
    ['duration', formatDuration(c.durationSec * 1000)],
  ];
  for (const [k, v] of Object.entries(data.parameters ?? {})) runRows.push([`parameter \`${k}\``, String(v)]);
  out.push(...table(['', ''], runRows));

  if (data.topology) {
    const t = data.topology;
    out.push(`### Topology (${mdText(String(t.mode))})`, '');
    const parts = Array.isArray(t.parts) ? t.parts : [];
    if (parts.length) {
      out.push(
        ...table(
          ['part', 'role', 'address', 'VIPs', 'namespace', 'pid'],
          parts.map((p) => [String(p.name), String(p.role), p.address ?? '', (p.vips ?? []).join(', '), p.namespace ?? '', p.pid === undefined ? '' : String(p.pid)]),
        ),
      );
    }
    const settings = Object.entries(t.settings ?? {});
    if (settings.length) out.push(...table(['setting', 'value'], settings.map(([k, v]) => [k, String(v)])));
  }

  const tools: string[][] = Object.entries(data.toolVersions ?? {}).map(([k, v]) => [k, String(v)]);
  const given = new Set(tools.map((t) => t[0]));
  if (!given.has('node')) tools.push(['node', env.node]);
  if (!given.has('kernel')) tools.push(['kernel', env.kernel]);
  tools.push(['machine', `${env.host}: ${env.cpus}, ${formatNumber(env.memoryGb, 1)} GB RAM`]);
  out.push('### Tools and machine', '', ...table(['tool', 'version'], tools));

  out.push('## Measured vs published', '');
  if (c.comparisons.length) {
    out.push(
      ...table(
        ['figure', 'measured', 'published', 'verdict', 'source'],
        c.comparisons.map((x) => [x.label, formatValue(x.measured, x.unit), formatValue(x.published, x.unit), VERDICT_TEXT[x.verdict], x.source + (x.note ? ` (${x.note})` : '')]),
      ),
    );
    out.push(`"better"/"worse" is the measured figure against the published one in the direction that is good for it (${c.comparisons.some((x) => x.better === 'lower') ? 'lower is better for times, drops and failures' : 'higher is better'}).`, '');
  } else {
    out.push('No published figure is set beside this experiment.', '');
  }

  out.push('## Calls', '');
  out.push(
    ...table(
      ['figure', 'value'],
      [
        ['calls attempted', count(c.callsAttempted)],
        ['calls established', count(c.callsEstablished)],
        ['established calls kept', count(c.callsKept)],
        ['established calls dropped', c.callsDropped === null ? 'not measured' : `${formatNumber(c.callsDropped)}${c.callsDroppedPct === null ? '' : ` (${formatValue(c.callsDroppedPct, '%')})`}`],
        ['new calls failed', c.callsFailedNew === null ? 'not measured' : `${formatNumber(c.callsFailedNew)}${c.callFailurePct === null ? '' : ` (all failures ${formatValue(c.callFailurePct, '%')} of attempted)`}`],
        ['BYE completed after the fault', typeof f.byeCompleted === 'number' ? `${formatNumber(f.byeCompleted)} of ${typeof f.byeAttempted === 'number' ? formatNumber(f.byeAttempted) : '?'}` : 'not measured'],
        ['average new calls/s', orNot(c.callsPerSecAvg, (n) => formatNumber(n, 2))],
        ['active calls: average / max', c.activeCallsAvg === null ? 'not measured' : `${formatNumber(c.activeCallsAvg, 1)} / ${formatNumber(c.activeCallsMax ?? 0)}`],
        ...(typeof f.retransmissions === 'number' ? [['SIP retransmissions', formatNumber(f.retransmissions)]] : []),
        ...(f.registers
          ? [
              ['REGISTER attempted / succeeded / failed', `${formatNumber(f.registers.attempted)} / ${formatNumber(f.registers.succeeded)} / ${formatNumber(f.registers.failed)}`],
              ['REGISTER/s average', orNot(c.registerPerSecAvg, (n) => formatNumber(n, 2))],
              ...(typeof f.registers.users === 'number' ? [['users', formatNumber(f.registers.users)]] : []),
            ]
          : []),
      ],
    ),
  );
  const reasons = Object.entries(f.failuresByReason ?? {})
    .filter(([, n]) => typeof n === 'number' && n > 0)
    .sort((a, b) => b[1] - a[1]);
  out.push('### Failures by reason', '');
  if (reasons.length) out.push(...table(['reason', 'calls'], reasons.map(([r, n]) => [r, formatNumber(n)])));
  else out.push(f.failuresByReason ? 'No failures.' : 'Not recorded.', '');

  out.push('## Takeover and media', '');
  const gap = c.mediaGapMs;
  out.push(
    ...table(
      ['figure', 'value'],
      [
        ['takeover time(s)', c.takeoverMs.length ? takeoverList(c.takeoverMs, f.takeoverOf) : 'not measured'],
        ['takeover mean / max', c.takeoverMeanMs === null ? 'not measured' : `${formatDuration(c.takeoverMeanMs)} / ${formatDuration(c.takeoverMaxMs ?? 0)}`],
        ['new-call refusal window', orNot(c.refusalWindowMs, formatDuration)],
        ...(c.pbxFailoverMs !== null ? [['PBX failover (new call answered by the other PBX)', formatDuration(c.pbxFailoverMs)]] : []),
        ...(c.pbxFailoverAfterTryingMs !== null ? [['PBX failover after 100 Trying', formatDuration(c.pbxFailoverAfterTryingMs)]] : []),
        ['worst RTP gap per call: p50 / p99 / max', gap ? `${formatDuration(gap.p50)} / ${formatDuration(gap.p99)} / ${formatDuration(gap.max)} (${formatNumber(gap.count)} calls)` : 'not measured'],
        ['RTP loss per call: p50 / p99 / max', c.mediaLossPct ? `${formatNumber(c.mediaLossPct.p50, 3)} % / ${formatNumber(c.mediaLossPct.p99, 3)} % / ${formatNumber(c.mediaLossPct.max, 3)} %` : 'not measured'],
        ['RTP loss, all packets', orNot(c.mediaLossTotalPct, (n) => `${formatNumber(n, 4)} %`)],
      ],
    ),
  );

  out.push('## Availability', '');
  const a = c.availability;
  if (a) {
    const trad = availabilityOf(a.mtbfSec, PUBLISHED_MTTR_TRADITIONAL_SEC);
    const ha = availabilityOf(a.mtbfSec, PUBLISHED_MTTR_HA_SEC);
    out.push(
      `A = MTBF / (MTBF + MTTR) with MTBF = ${formatNumber(a.mtbfSec / 3600, 1)} h = ${formatNumber(a.mtbfSec)} s (both papers' two weeks) and MTTR = ${formatDuration(a.mttrSec * 1000)}, ${mdText(a.mttrSource)}:`,
      '',
      `A = ${formatNumber(a.mtbfSec)} / (${formatNumber(a.mtbfSec)} + ${formatNumber(a.mttrSec, 3)}) = **${formatAvailability(a.availability)}**`,
      '',
    );
    out.push(
      ...table(
        ['system', 'MTTR', 'availability', 'nines', 'downtime per year'],
        [
          ['this run', formatDuration(a.mttrSec * 1000), formatAvailability(a.availability), formatNumber(a.nines, 2), formatDuration(a.downtimePerYearSec * 1000)],
          ['published HA system (Pryimak & Kravchuk 2025, §4)', formatDuration(ha.mttrSec * 1000), formatAvailability(ha.availability), formatNumber(ha.nines, 2), formatDuration(ha.downtimePerYearSec * 1000)],
          ['published traditional system (same, restore from backup)', formatDuration(trad.mttrSec * 1000), formatAvailability(trad.availability), formatNumber(trad.nines, 2), formatDuration(trad.downtimePerYearSec * 1000)],
        ],
      ),
    );
    out.push('Downtime per year assumes one such failure every MTBF, each costing the MTTR.', '');
  } else {
    out.push('Not computed: the run measured neither a takeover nor a refusal window.', '');
  }

  if (plots.length) {
    out.push('## Plots', '');
    for (const p of plots) out.push(`![${mdText(p.caption)}](${p.file})`, '', `*${mdText(p.caption)}*`, '');
  }

  if (checks.length) {
    out.push('## Checks', '');
    out.push(...table(['check', 'result', 'detail'], checks.map((x) => [String(x.name), x.ok ? 'pass' : 'FAIL', x.detail ?? ''])));
  }

  const events = (Array.isArray(data.events) ? data.events : []).filter((e) => e && Number.isFinite(e.atMs)).sort((x, y) => x.atMs - y.atMs);
  if (events.length) {
    out.push('## Events', '');
    const rows = events.slice(0, MAX_EVENT_ROWS).map((e) => [
      formatNumber((e.atMs - data.startedAtMs) / 1000, 3),
      String(e.kind),
      String(e.node ?? ''),
      e.resource ? `${e.resource}${e.held === false ? ' (released)' : ''}` : '',
      e.detail ?? '',
    ]);
    out.push(...table(['t (s)', 'event', 'node', 'VIP / lease', 'detail'], rows));
    if (events.length > MAX_EVENT_ROWS) out.push(`(${events.length - MAX_EVENT_ROWS} more in report.json)`, '');
  }

  const notes = Array.isArray(data.notes) ? data.notes : [];
  if (notes.length) out.push('## Notes', '', ...notes.map((n) => `- ${mdText(String(n))}`), '');
  out.push('Data and computed figures: [report.json](report.json).', '');
  return out.join('\n');
}
