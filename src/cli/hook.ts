/** `hook list|test|sample`: runs the customization commands against the configured customizations dir. */
import path from 'node:path';
import { loadConfig } from '../config/load.ts';
import { runHookCommand } from './hook-command.ts';

export async function hookCommand(argv: string[], configPath: string | undefined): Promise<number> {
  const config = configPath ? loadConfig(configPath) : undefined;
  const dir = config?.customizations.dir ?? path.resolve('customizations');
  // --config FILE is ours; the hook command parses the rest.
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--config') i++;
    else rest.push(argv[i]!);
  }
  return runHookCommand(rest, { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin },
    { dir, ...(config ? { timeoutMs: config.customizations.timeoutMs } : {}) });
}
