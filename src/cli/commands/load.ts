import type { Command } from 'commander';

/** Placeholder until the owning feature lands. */
export function registerLoadCommand(program: Command): void {
  program.command('load').description('not yet implemented').action(() => {
    console.error('tandem load: not yet implemented');
    process.exit(2);
  });
}
