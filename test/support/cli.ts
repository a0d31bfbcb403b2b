/** The CLI as a real process (Node 24, the daemon's own entry point), for tests that run it like an admin would. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

export const CLI = join(import.meta.dirname, '../../src/cli.ts');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion with an environment holding only PATH (secrets must come from the config). */
export function runCli(args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += String(d)));
    child.stderr.on('data', (d) => (stderr += String(d)));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Resolves with the exit code, or the signal that ended the process. */
export function exited(child: ChildProcess): Promise<number | string> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode ?? child.signalCode!);
    else child.once('exit', (code, signal) => resolve(code ?? signal!));
  });
}

/**
 * `run --config FILE` as systemd would start it; stdout and stderr are collected into `output` when given —
 * stderr (warn and error lines) into `errors` instead when that is given: chunks of two pipes interleave at
 * arbitrary points, so only one stream's chunks can be split into whole lines.
 */
export function spawnDaemon(config: string, output?: string[], errors?: string[]): ChildProcess {
  const child = spawn(process.execPath, [CLI, 'run', '--config', config], {
    env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', output ? 'pipe' : 'ignore', output || errors ? 'pipe' : 'ignore'],
  });
  if (output) child.stdout!.on('data', (d) => output.push(String(d)));
  const err = errors ?? output;
  if (err) child.stderr!.on('data', (d) => err.push(String(d)));
  return child;
}

/** For cleanup: SIGKILL unless it already ended. */
export function killIfAlive(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}
