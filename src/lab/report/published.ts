/**
 * The published figures an experiment report is set beside, each with the paper and the section
 * or table it comes from. Two designs (in ../shared/papers/ of the project's workspace):
 *
 * - PK2025: S. O. Pryimak, S. O. Kravchuk, "VoIP system with high availability", Information and
 *   Telecommunication Sciences, 2025, DOI 10.20535/2411-2976.12025.59-66. Kamailio pair, rtpengine
 *   pair, Redis, keepalived; experiments A (signalling node off) and B (media node off).
 * - MGUG2018: A. Martin, E. Gamess, D. Urribarri, J. Gomez, "A Proposal for A High Availability
 *   Architecture for VoIP Telephone Systems based on Open Source Software", IJACSA vol. 9 no. 9,
 *   2018. Kamailio pair with Pacemaker/Corosync, two Asterisk PBXs behind the dispatcher; SIPp
 *   failover and stress tests.
 */
import type { ComputedFigures, ExperimentName } from './types.js';

/** Keys of the computed figures that can be compared with a published number. */
export type MetricKey = {
  [K in keyof ComputedFigures]: ComputedFigures[K] extends number | null ? K : never;
}[keyof ComputedFigures];

export type MetricUnit = 'ms' | '%' | 'calls' | 'calls/s' | 'REGISTER/s';

export interface PublishedFigure {
  id: string;
  /** Experiments whose report shows this line. */
  experiments: readonly ExperimentName[];
  label: string;
  metric: MetricKey;
  value: number;
  unit: MetricUnit;
  better: 'lower' | 'higher';
  /** Paper and where in it. */
  source: string;
  note?: string;
}

const PK = 'Pryimak & Kravchuk 2025';
const MG = 'Martin et al. 2018';

const FAILOVER: readonly ExperimentName[] = ['sig-fail', 'media-fail', 'half-dead', 'redis-fail', 'ringing-fail'];

/** MTBF both papers' availability figures assume: two weeks. */
export const PUBLISHED_MTBF_HOURS = 336;
/** PK2025 §4: MTTR of a traditional system (restore from backup) and of the HA one (handover). */
export const PUBLISHED_MTTR_TRADITIONAL_SEC = 3600;
export const PUBLISHED_MTTR_HA_SEC = 1;

export const PUBLISHED_FIGURES: readonly PublishedFigure[] = [
  {
    id: 'pk-switchover',
    experiments: FAILOVER,
    label: 'Takeover (switchover to hot standby), worst of the run',
    metric: 'takeoverMaxMs',
    value: 1000,
    unit: 'ms',
    better: 'lower',
    source: `${PK}, §5 "Switchover time to hot standby is 1 sec"; §4 MTTR 1 s`,
  },
  {
    id: 'pk-availability',
    experiments: FAILOVER,
    label: 'Availability A = MTBF/(MTBF+MTTR), MTBF 336 h',
    metric: 'availabilityPct',
    value: (100 * 1209600) / (1209600 + 1),
    unit: '%',
    better: 'higher',
    source: `${PK}, §4 and §7: 1209600 / (1209600 + 1), printed as 99.9999 %`,
  },
  {
    id: 'pk-dropped',
    experiments: FAILOVER,
    label: 'Established calls dropped',
    metric: 'callsDropped',
    value: 0,
    unit: 'calls',
    better: 'lower',
    source: `${PK}, abstract and §7 ("does not interrupt any call" with 50 % of components failed)`,
    note: 'one call by hand in the paper',
  },
  {
    id: 'pk-bye',
    experiments: ['sig-fail', 'half-dead'],
    label: 'BYE of a call set up before the fault completed through the survivor',
    metric: 'byeCompletedPct',
    value: 100,
    unit: '%',
    better: 'higher',
    source: `${PK}, §6 experiment A, Fig. 3 (BYE at 06:49:11.79 answered through KAM2 at 06:49:13.76)`,
    note: 'one call',
  },
  {
    id: 'pk-refusal',
    experiments: ['sig-fail', 'half-dead', 'redis-fail'],
    label: 'New calls refused for (goal: no longer than the takeover)',
    metric: 'refusalWindowMs',
    value: 1000,
    unit: 'ms',
    better: 'lower',
    source: `${PK}, §5 (1 s switchover) and §7 ("all existing and new voice calls continue to be processed")`,
  },
  {
    id: 'mg-service-migration',
    experiments: ['sig-fail', 'half-dead'],
    label: 'Proxy/registrar failover (Pacemaker, no fencing), service level; takeover, worst of the run',
    metric: 'takeoverMaxMs',
    value: 3490,
    unit: 'ms',
    better: 'lower',
    source: `${MG}, Table VIII, scenario 2 test 1 (user level 4.50 s; with fencing 7.38 s)`,
  },
  {
    id: 'mg-service-migration-ringing',
    experiments: ['ringing-fail'],
    label: 'Proxy/registrar failover with an INVITE in progress (Pacemaker, no fencing), service level; takeover, worst of the run',
    metric: 'takeoverMaxMs',
    value: 3440,
    unit: 'ms',
    better: 'lower',
    source: `${MG}, Table VIII, scenario 2 test 2 (user level 4.21 s; with fencing 7.41 s)`,
  },
  {
    id: 'mg-pbx-situation1',
    experiments: ['pbx-fail'],
    label: 'New call to a just-failed PBX answered by the other (no response)',
    metric: 'pbxFailoverMs',
    value: 4174,
    unit: 'ms',
    better: 'lower',
    source: `${MG}, Table VII, scenario 1 situation 1 (mean of 200 runs, 4 s INVITE timeout)`,
  },
  {
    id: 'mg-pbx-situation2',
    experiments: ['pbx-fail'],
    label: 'New call to a PBX that failed after 100 Trying answered by the other',
    metric: 'pbxFailoverAfterTryingMs',
    value: 63049,
    unit: 'ms',
    better: 'lower',
    source: `${MG}, Table VII, scenario 1 situation 2 (mean of 200 runs, 60 s ringing timeout)`,
  },
  {
    id: 'mg-stress-rate',
    experiments: ['stress'],
    label: 'Average call rate (target 300 calls/s, 2,000 concurrent, 6 s calls)',
    metric: 'callsPerSecAvg',
    value: 284.75,
    unit: 'calls/s',
    better: 'higher',
    source: `${MG}, Table X, scenario 2 test 1, first run (second run 284.80)`,
  },
  {
    id: 'mg-stress-active',
    experiments: ['stress'],
    label: 'Average active calls (limit 2,000)',
    metric: 'activeCallsAvg',
    value: 1997.58,
    unit: 'calls',
    better: 'higher',
    source: `${MG}, Table X, scenario 2 test 1, first run (second run 1997.66)`,
  },
  {
    id: 'mg-stress-failed',
    experiments: ['stress'],
    label: 'Failed calls, percent of generated',
    metric: 'callFailurePct',
    value: (16 / 1025107) * 100,
    unit: '%',
    better: 'lower',
    source: `${MG}, Table X, scenario 2 test 1: 16 of 1,025,107 (second run 1,068 of 1,025,314 = 0.104 %)`,
  },
  {
    id: 'mg-register-rate',
    experiments: ['stress'],
    label: 'Average REGISTER rate (target 1,000/s over 10,000 users)',
    metric: 'registerPerSecAvg',
    value: 996.05,
    unit: 'REGISTER/s',
    better: 'higher',
    source: `${MG}, Table XI, test 3, first run (second run 995.23)`,
  },
  {
    id: 'mg-register-failed',
    experiments: ['stress'],
    label: 'Failed REGISTER transactions, percent',
    metric: 'registerFailurePct',
    value: (1 / 3585832) * 100,
    unit: '%',
    better: 'lower',
    source: `${MG}, Table XI, test 3: 1 of 3,585,832 (second run 8 of 3,582,895)`,
  },
];

/** The published figures shown in an experiment's report. */
export function publishedFor(experiment: ExperimentName): PublishedFigure[] {
  return PUBLISHED_FIGURES.filter((f) => f.experiments.includes(experiment));
}
