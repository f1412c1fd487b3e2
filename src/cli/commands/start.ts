import type { Command } from 'commander';

/** Placeholder until the owning feature lands. */
export function registerStartCommand(program: Command): void {
  program.command('start').description('not yet implemented').action(() => {
    console.error('tandem start: not yet implemented');
    process.exit(2);
  });
}
