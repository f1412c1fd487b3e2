import { Command } from 'commander';
import { registerStartCommand } from './commands/start.js';
import { registerMediaCommand } from './commands/media.js';
import { registerLoadCommand } from './commands/load.js';
import { registerStatusCommand } from './commands/status.js';
import { registerLabCommand } from './commands/lab.js';
import { registerClusterCommand } from './commands/cluster.js';
import { keepPrototypesFast } from '../util/fast-prototypes.js';

// A closed stdout (e.g. piped into `head`) must not keep a node from shutting down on SIGTERM.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});

// Every module is loaded by now (ioredis among them, whose `extends String` slows every string
// method call in the process): see util/fast-prototypes.
keepPrototypesFast();

const program = new Command();
program.name('tandem').description('High-availability VoIP: SIP proxy/registrar, RTP relay, load generator').version('0.1.0');
registerStartCommand(program);
registerMediaCommand(program);
registerLoadCommand(program);
registerStatusCommand(program);
registerLabCommand(program);
registerClusterCommand(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
