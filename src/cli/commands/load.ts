import { Command, Option } from 'commander';
import { availableParallelism } from 'node:os';
import { runLoad, type RunLoadOptions } from '../../loadgen/run-load.js';
import { startUas, type UasOptions } from '../../loadgen/uas.js';
import { parseDurationMs, parseHostPort, parseLocal, parsePortRange } from '../../loadgen/options.js';
import { readUsersFile } from '../../loadgen/users.js';
import { readWavFile } from '../../loadgen/rtp/wav.js';
import { figuresOf, formatSummary, progressLine } from '../../loadgen/report.js';
import type { LoadScenario } from '../../loadgen/uac.js';
import type { Result } from '../../util/result.js';

function must<T>(r: Result<T>): T {
  if (!r.ok) {
    console.error(`tandem load: ${r.reason}`);
    process.exit(2);
  }
  return r.value;
}

function num(name: string, min = 0): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) {
      console.error(`tandem load: --${name} wants a number >= ${min}, got "${v}"`);
      process.exit(2);
    }
    return n;
  };
}

interface UacFlags {
  target: string;
  rate: number;
  ratePeriod: string;
  rateIncrease?: number;
  rateInterval?: string;
  rateMax?: number;
  limit?: number;
  calls?: number;
  duration: string;
  timeout?: string;
  stopAfter?: string;
  local: string;
  transport: 'udp' | 'tcp';
  rtp?: boolean;
  rtpFile?: string;
  rtpPorts?: string;
  users?: string;
  service: string;
  domain?: string;
  expires: number;
  workers: number;
  statsFile?: string;
  progress?: 'tty' | 'lines' | 'none';
  reportInterval: string;
  summary: 'text' | 'json';
}

function addUacOptions(cmd: Command, scenario: LoadScenario): Command {
  cmd
    .requiredOption('--target <host:port>', 'where requests go (proxy, registrar or UAS)')
    .option('--rate <n>', 'new calls per rate period', num('rate', 0.001), 10)
    .option('--rate-period <dur>', 'period the rate counts over', '1s')
    .option('--rate-increase <n>', 'ramp: add this to the rate every --rate-interval', num('rate-increase'))
    .option('--rate-interval <dur>', 'ramp: how often the rate increases')
    .option('--rate-max <n>', 'ramp: highest rate', num('rate-max'))
    .option('--limit <n>', 'most calls in progress at once (concurrency)', num('limit', 1))
    .option('--calls <n>', 'calls to generate, then stop (default 100 when --stop-after is not given)', num('calls', 0))
    .option('--duration <dur>', scenario === 'register' ? 'time before the refresh REGISTER (0 = no refresh)' : 'call hold time between ACK and BYE', scenario === 'call' ? '0s' : '0s')
    .option('--timeout <dur>', 'per-transaction bound until a final response (default 64*T1 = 32s)')
    .option('--stop-after <dur>', 'global time bound: stop generating, hang up calls in hold, cancel ringing ones, abort the rest after 5 s')
    .option('--local <addr[-addr][:port[-port]]>', 'local address (or IPv4 range, calls take them in turn) and optional SIP port range (one port per worker and address)', '127.0.0.1')
    .addOption(new Option('--transport <t>', 'SIP transport').choices(['udp', 'tcp']).default('udp'))
    .option('--users <file>', 'injection CSV: optional SEQUENTIAL line, then user;password or user,password rows (From user and digest credentials)')
    .option('--service <user>', 'Request-URI user', 'service')
    .option('--domain <domain>', 'domain of the Request-URI, To and REGISTER AORs (default: the target host:port)')
    .option('--expires <sec>', 'REGISTER Expires', num('expires'), 3600)
    .option('--workers <n>', 'worker threads sharing the calls', num('workers', 0), availableParallelism())
    .option('--stats-file <file>', 'periodic and final figures: .csv or .json')
    .addOption(new Option('--progress <mode>', 'tty: one live line; lines: a line per period; none (default: tty on a terminal)').choices(['tty', 'lines', 'none']))
    .option('--report-interval <dur>', 'period of progress lines and stats rows', '1s')
    .addOption(new Option('--summary <format>', 'final summary format on stdout').choices(['text', 'json']).default('text'));
  if (scenario === 'call') {
    cmd
      .option('--rtp', 'send G.711 RTP (172-byte packets every 20 ms) and measure what comes back')
      .option('--rtp-file <wav>', 'audio to send: WAV (16-bit PCM, or 8 kHz G.711); default a 440 Hz tone; implies --rtp')
      .option('--rtp-ports <min-max>', 'local RTP port range (default any free port)');
  }
  return cmd;
}

async function runUac(scenario: LoadScenario, f: UacFlags): Promise<void> {
  const target = must(parseHostPort(f.target, 5060));
  const local = must(parseLocal(f.local));
  const dur = (v: string | undefined): number | undefined => (v === undefined ? undefined : must(parseDurationMs(v)));
  const opts: RunLoadOptions = {
    scenario,
    target,
    transport: f.transport,
    service: f.service,
    localAddress: local.address,
    rate: f.rate,
    ratePeriodMs: dur(f.ratePeriod)!,
    durationMs: dur(f.duration)!,
    expiresSec: f.expires,
    workers: f.workers,
    reportMs: dur(f.reportInterval)!,
  };
  if (local.addresses) opts.localAddresses = local.addresses;
  if (local.portMin) opts.localPortMin = local.portMin;
  if (local.portMax) opts.localPortMax = local.portMax;
  if (f.rateIncrease !== undefined) opts.rateIncrease = f.rateIncrease;
  if (f.rateInterval !== undefined) opts.rateIntervalMs = dur(f.rateInterval)!;
  if (f.rateMax !== undefined) opts.rateMax = f.rateMax;
  if (f.limit !== undefined) opts.limit = f.limit;
  if (f.timeout !== undefined) opts.timeoutMs = dur(f.timeout)!;
  if (f.stopAfter !== undefined) opts.stopAfterMs = dur(f.stopAfter)!;
  opts.calls = f.calls ?? (opts.stopAfterMs === undefined ? 100 : Infinity);
  if (f.domain) opts.domain = f.domain;
  if (f.users) opts.users = must(readUsersFile(f.users));
  if (f.rtpFile) {
    opts.audio = must(readWavFile(f.rtpFile));
    opts.rtp = true;
  }
  if (f.rtp) opts.rtp = true;
  if (f.rtpPorts) {
    const r = must(parsePortRange(f.rtpPorts));
    opts.rtpPortMin = r.min;
    opts.rtpPortMax = r.max;
  }
  if (f.statsFile) opts.statsFile = f.statsFile;
  if (f.progress) opts.progress = f.progress;
  const ac = new AbortController();
  opts.signal = ac.signal;
  const onSignal = (): void => ac.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const result = await runLoad(opts);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  if (f.summary === 'json') console.log(JSON.stringify({ ...result.figures, failures: result.failures, workers: result.workers }));
  else console.log(result.summary);
  process.exitCode = result.figures.failed > 0 || result.figures.successful === 0 ? 1 : 0;
}

interface UasFlags {
  listen: string;
  transport: 'udp' | 'tcp';
  rtp?: 'off' | 'echo' | 'send';
  rtpFile?: string;
  rtpPorts?: string;
  ringDelay: string;
  ringForever?: boolean;
  answerStatus: number;
  authUsers?: string;
  realm: string;
  stopAfter?: string;
  workers?: number;
  maxCall: string;
  register?: string;
  user: string;
  password?: string;
  domain?: string;
  expires: number;
  progress?: 'tty' | 'lines' | 'none';
  reportInterval: string;
  summary: 'text' | 'json';
}

function rtpWorkersOf(f: UasFlags): number {
  const rtpOn = (f.rtp ?? (f.rtpFile ? 'send' : 'off')) !== 'off';
  if (!rtpOn) return 0;
  return f.workers ?? availableParallelism();
}

async function runUasCommand(f: UasFlags): Promise<void> {
  const listen = must(parseHostPort(f.listen, 5060));
  const opts: UasOptions = {
    listen,
    transport: f.transport,
    rtp: f.rtp ?? (f.rtpFile ? 'send' : 'off'),
    ringDelayMs: must(parseDurationMs(f.ringDelay)),
    ringForever: !!f.ringForever,
    answerStatus: f.answerStatus,
    realm: f.realm,
    rtpWorkers: rtpWorkersOf(f),
    maxCallMs: must(parseDurationMs(f.maxCall)),
  };
  if (f.rtpFile) opts.audio = must(readWavFile(f.rtpFile));
  if (f.rtpPorts) {
    const r = must(parsePortRange(f.rtpPorts));
    opts.rtpPortMin = r.min;
    opts.rtpPortMax = r.max;
  }
  if (f.authUsers) opts.authUsers = must(readUsersFile(f.authUsers));
  if (f.register) {
    const registrar = must(parseHostPort(f.register, 5060));
    opts.register = { registrar, domain: f.domain ?? f.register, user: f.user, password: f.password ?? '', expiresSec: f.expires };
  }
  let uas: Awaited<ReturnType<typeof startUas>>;
  try {
    uas = await startUas(opts);
  } catch (err) {
    console.error(`tandem load uas: ${(err as Error).message}`);
    process.exit(1);
  }
  const a = uas.address;
  console.log(`tandem load uas listening ${f.transport} ${a.address}:${a.port}${f.register ? ` registered as sip:${f.user}@${opts.register!.domain}` : ''}`);
  const started = Date.now();
  const progress = f.progress ?? (process.stderr.isTTY ? 'tty' : 'lines');
  const rtp = opts.rtp !== 'off';
  let lastGen = 0;
  const reportMs = must(parseDurationMs(f.reportInterval));
  const timer = setInterval(() => {
    const s = uas.snapshot();
    const fig = figuresOf(s, (Date.now() - started) / 1000, ((s.generated - lastGen) * 1000) / reportMs, 0);
    lastGen = s.generated;
    if (progress === 'tty') process.stderr.write(`\r\x1b[2K${progressLine(fig, rtp)}`);
    else if (progress === 'lines') process.stderr.write(progressLine(fig, rtp) + '\n');
  }, reportMs);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
    if (f.stopAfter) setTimeout(resolve, must(parseDurationMs(f.stopAfter))).unref();
  });
  clearInterval(timer);
  if (progress === 'tty') process.stderr.write('\n');
  await uas.close(); // collects the RTP workers' final figures
  const s = uas.snapshot();
  const elapsed = (Date.now() - started) / 1000;
  const fig = figuresOf(s, elapsed, s.generated / Math.max(elapsed, 0.001), 0);
  if (f.summary === 'json') console.log(JSON.stringify({ ...fig, failures: s.failures, requests: s.requests }));
  else {
    console.log(formatSummary({ scenario: 'uas', transport: f.transport, target: `${a.address}:${a.port}`, workers: 1, rtp }, fig, s.failures));
    console.log(`  Requests: ${Object.entries(s.requests).map(([m, n]) => `${m} ${n}`).join(', ')}`);
  }
  process.exit(0);
}

/** `tandem load call|register|options|uas`: the SIPp-class load generator. */
export function registerLoadCommand(program: Command): void {
  const load = program.command('load').description('load generator: UAC scenarios (call, register, options) and a UAS');
  addUacOptions(load.command('call').description('INVITE-100-180-200-ACK, hold for --duration, BYE-200; optional RTP both ways'), 'call').action(
    (f: UacFlags) => runUac('call', f),
  );
  addUacOptions(load.command('register').description('REGISTER with digest auth from --users; refresh after --duration'), 'register').action(
    (f: UacFlags) => runUac('register', f),
  );
  addUacOptions(load.command('options').description('OPTIONS pings; any 2xx is a success'), 'options').action((f: UacFlags) => runUac('options', f));
  load
    .command('uas')
    .description('answer calls: 100, 180, optional ringing delay, 200 with SDP (or --answer-status), BYE, CANCEL, OPTIONS, REGISTER')
    .option('--listen <host:port>', 'address to listen on (port 0 = any; the chosen port is printed)', '127.0.0.1:5090')
    .addOption(new Option('--transport <t>', 'SIP transport').choices(['udp', 'tcp']).default('udp'))
    .addOption(new Option('--rtp <mode>', 'RTP: off, echo (return what arrives) or send (own tone or --rtp-file)').choices(['off', 'echo', 'send']))
    .option('--rtp-file <wav>', 'audio to send in --rtp send mode (WAV: 16-bit PCM or 8 kHz G.711)')
    .option('--rtp-ports <min-max>', 'local RTP port range (default any free port)')
    .option('--ring-delay <dur>', 'time between 180 Ringing and the final response', '0s')
    .option('--ring-forever', 'send 180 and never answer (callers must CANCEL or time out)')
    .option('--answer-status <code>', 'final status for INVITEs (200 answers; e.g. 486 or 503 rejects)', num('answer-status', 200), 200)
    .option('--auth-users <file>', 'challenge INVITE and REGISTER with digest against these users (same CSV format as --users)')
    .option('--realm <realm>', 'digest realm', 'tandem')
    .option('--max-call <dur>', 'forget a call (and close its RTP) not hung up after this long', '1h')
    .option('--register <host:port>', 'register this UAS at a registrar (digest answered with --user/--password; refreshed; removed on exit)')
    .option('--user <name>', 'user the UAS registers as', 'uas')
    .option('--password <pw>', 'password for the registration')
    .option('--domain <domain>', 'domain of the registered AOR (default: the registrar host:port)')
    .option('--expires <sec>', 'registration expiry asked for', num('expires', 1), 300)
    .option('--stop-after <dur>', 'exit after this long (default: run until SIGINT/SIGTERM)')
    .option('--workers <n>', 'worker threads for RTP streams when --rtp is on (0 = in the SIP thread; default cores)', num('workers', 0))
    .addOption(new Option('--progress <mode>', 'tty, lines or none (default: tty on a terminal)').choices(['tty', 'lines', 'none']))
    .option('--report-interval <dur>', 'period of progress lines', '1s')
    .addOption(new Option('--summary <format>', 'summary format on exit').choices(['text', 'json']).default('text'))
    .action((f: UasFlags) => runUasCommand(f));
}
