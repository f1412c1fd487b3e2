/**
 * What `tandem lab run` hands to the report writer, and what the writer computes from it.
 * Times are wall-clock milliseconds since the epoch (`Date.now()`), so samples from the load
 * generator and events from keepalived notify scripts, lease polling and the lab itself can be
 * merged without agreeing on a start instant first. Every field but `experiment`, `startedAtMs`
 * and `endedAtMs` is optional: a report is written from whatever the run produced, and a figure
 * that was not measured is shown as "not measured", never as 0.
 */

/** Experiments of `tandem lab run` (issue 12). Any other name is accepted and reported as-is. */
export type ExperimentName =
  | 'sig-fail'
  | 'media-fail'
  | 'half-dead'
  | 'redis-fail'
  | 'pbx-fail'
  | 'stress'
  | 'ringing-fail'
  | (string & {});

/** One row of the time series, taken every 250 ms to 1 s during the run. */
export interface LabSample {
  /** Wall clock of the sample, ms since the epoch. */
  atMs: number;
  /** Calls established and not yet ended. */
  activeCalls: number;
  /** New calls started per second over the last sample period. */
  callsPerSec: number;
  /** Calls failed since the start of the run (new calls refused and established calls dropped). */
  failedSoFar: number;
  /** Calls established since the start of the run. */
  establishedSoFar?: number;
}

export type LabEventKind = 'fault' | 'vip-move' | 'lease' | 'node-up' | 'node-down' | 'note';

/**
 * Something that happened to the topology. `vip-move` and `lease` describe who holds a shared
 * resource (a VIP address, a Redis lease, the Redis primary role): `node` took `resource` at
 * `atMs` (or gave it up when `held` is false). A later holder implicitly ends the earlier one.
 * Give the holders at the start as events at or before `startedAtMs` so the timeline starts full.
 */
export interface LabEvent {
  atMs: number;
  kind: LabEventKind;
  /** Part name as in topology.json (`sig1`, `media2`, `redis1`), or '' for the lab itself. */
  node: string;
  /** Which VIP or lease a `vip-move`/`lease` event is about, e.g. `sig-vip 198.18.0.10`, `lease media`. */
  resource?: string;
  /** `vip-move`/`lease`: false when `node` gave the resource up (default true: it took it). */
  held?: boolean;
  /** Free text: how the fault was made (`SIGKILL`, `link-down`), keepalived state, ... */
  detail?: string;
}

/** Per-call media figures measured by the phones (the load generator's RTP receivers). */
export interface LabMedia {
  /** Each call's longest silence between two consecutive RTP packets, ms (one entry per stream). */
  perCallWorstGapMs: number[];
  /** Each call's packet loss, percent of expected packets (same order as the gaps, optional). */
  perCallLossPct?: number[];
  packetsExpected?: number;
  packetsLost?: number;
}

/** REGISTER load figures (the `stress` experiment). */
export interface LabRegisterFigures {
  attempted: number;
  succeeded: number;
  failed: number;
  /** Registered users the load cycled over. */
  users?: number;
  /** Average REGISTER transactions per second over the run. */
  perSecAvg?: number;
  retransmissions?: number;
}

/** Counters of the run. All optional: a missing one is reported as "not measured". */
export interface LabFigures {
  /** INVITEs sent for new calls. */
  callsAttempted?: number;
  /** Calls that got a 2xx and an ACK. */
  callsEstablished?: number;
  /** Established calls lost before their own BYE: the figure HA is judged by (goal 0). */
  callsDropped?: number;
  /** New calls that did not get established (refused, timed out). */
  callsFailedNew?: number;
  /** Failures by reason as the load generator names them (`timeout`, `status 503`, `BYE timeout`). */
  failuresByReason?: Record<string, number>;
  /** Each measured takeover, ms: from the fault to the survivor serving (VIP or lease moved and traffic flowing). */
  takeoverMs?: number[];
  /** What each takeover was, same order as takeoverMs (`sig VIP`, `media VIP`, `Redis primary`). */
  takeoverOf?: string[];
  /** Longest stretch during which new calls were refused or unanswered, ms. */
  refusalWindowMs?: number;
  /** BYEs sent for calls established before the fault. */
  byeAttempted?: number;
  /** Of those, BYEs answered 200 (through the survivor). */
  byeCompleted?: number;
  /** pbx-fail: how long a new call aimed at the dead PBX took to be answered by the other one, ms. */
  pbxFailoverMs?: number;
  /** pbx-fail, the paper's situation 2: the PBX died after answering 100 Trying; time until the other PBX answered, ms. */
  pbxFailoverAfterTryingMs?: number;
  /** Average calls per second over the run; computed from callsAttempted and the run time if absent. */
  callsPerSecAvg?: number;
  /** SIP retransmissions seen by the phones. */
  retransmissions?: number;
  /** REGISTER load (stress). */
  registers?: LabRegisterFigures;
}

/** One part of the topology, as in `DIR/topology.json` (a subset of the lab's part record). */
export interface LabTopologyPart {
  name: string;
  role: string;
  address?: string;
  vips?: string[];
  namespace?: string;
  pid?: number;
  adminUrl?: string;
}

export interface LabTopologySummary {
  /** `netns` (namespaces, keepalived) or `loopback` (127.x, lease takeover). */
  mode: string;
  parts: LabTopologyPart[];
  /** Free-form settings worth printing: advert interval, lease TTL, takeover mode. */
  settings?: Record<string, string | number | boolean>;
}

/** A pass/fail check the experiment itself decided (e.g. "0 established calls dropped"). */
export interface LabCheck {
  name: string;
  ok: boolean;
  detail?: string;
}

/** Everything one experiment run produced; the input of {@link writeExperimentReport}. */
export interface ExperimentData {
  experiment: ExperimentName;
  /** One sentence: what the experiment does. Printed under the title. */
  description?: string;
  /** The run's parameters as given (`calls`, `rate`, `duration`, `how`). */
  parameters?: Record<string, string | number | boolean>;
  startedAtMs: number;
  endedAtMs: number;
  topology?: LabTopologySummary;
  /** Versions of the tools that took part (`tandem`, `keepalived`, `redis-server`, `kernel`). */
  toolVersions?: Record<string, string>;
  samples?: LabSample[];
  events?: LabEvent[];
  media?: LabMedia;
  figures?: LabFigures;
  checks?: LabCheck[];
  /** Free notes printed at the end of the report (what went wrong, what was skipped). */
  notes?: string[];
}

/** Options of {@link writeExperimentReport}. */
export interface ReportOptions {
  /** Mean time between failures for the availability figure, hours. @default 336 (both papers' two weeks) */
  mtbfHours?: number;
  /** Time in the directory name; @default the run's start */
  nameTime?: Date;
  /** Skip PNG rendering (SVG files are still written). @default false */
  svgOnly?: boolean;
  /** Plot width and height in pixels. @default 1200 x 560 */
  plotWidthPx?: number;
  plotHeightPx?: number;
}

/** A quantity compared with a published one. */
export type Verdict = 'better' | 'worse' | 'same' | 'not measured';

/** One line of the "measured vs published" table. */
export interface Comparison {
  /** Id of the published figure (see published.ts). */
  id: string;
  label: string;
  unit: string;
  measured: number | null;
  published: number;
  better: 'lower' | 'higher';
  verdict: Verdict;
  /** Paper and section/table the published number comes from. */
  source: string;
  note?: string;
}

export interface Percentiles {
  count: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

/** A = MTBF / (MTBF + MTTR), with the figures around it. */
export interface Availability {
  mtbfSec: number;
  mttrSec: number;
  /** Where the MTTR came from: `takeover (mean of N)`, `new-call refusal window`, ... */
  mttrSource: string;
  /** 0..1 */
  availability: number;
  /** -log10(1 - A): 6 means 99.9999 %. */
  nines: number;
  downtimePerYearSec: number;
}

/** What the writer computes from the data (stored under `computed` in report.json). */
export interface ComputedFigures {
  durationSec: number;
  callsAttempted: number | null;
  callsEstablished: number | null;
  callsKept: number | null;
  callsDropped: number | null;
  /** Dropped / established, percent. */
  callsDroppedPct: number | null;
  callsFailedNew: number | null;
  /** Failed new calls / attempted, percent. */
  callFailurePct: number | null;
  callsPerSecAvg: number | null;
  activeCallsAvg: number | null;
  activeCallsMax: number | null;
  byeCompletedPct: number | null;
  takeoverMs: number[];
  takeoverMeanMs: number | null;
  takeoverMaxMs: number | null;
  refusalWindowMs: number | null;
  pbxFailoverMs: number | null;
  pbxFailoverAfterTryingMs: number | null;
  mediaGapMs: Percentiles | null;
  mediaLossPct: Percentiles | null;
  mediaLossTotalPct: number | null;
  registerPerSecAvg: number | null;
  registerFailurePct: number | null;
  availability: Availability | null;
  /** availability.availability as a percentage (for the comparison table). */
  availabilityPct: number | null;
  comparisons: Comparison[];
}

/** What {@link writeExperimentReport} returns. */
export interface WrittenReport {
  /** The report directory, `DIR/reports/<experiment>-<time>/`. */
  dir: string;
  /** Paths of the files written, report.md first. */
  files: string[];
  computed: ComputedFigures;
}
