import type { Command } from 'commander';

/** Placeholder until the owning feature lands. */
export function registerMediaCommand(program: Command): void {
  program.command('media').description('not yet implemented').action(() => {
    console.error('tandem media: not yet implemented');
    process.exit(2);
  });
}
