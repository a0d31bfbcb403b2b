/** Shared set-up for the hooks tests: a temp customizations dir, a runner on it, and captured log lines. */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import { createLogger, type Logger } from '../../src/log/logger.ts';
import { HookRunner, type HookRunnerOptions } from '../../src/hooks/runner.ts';

export interface LogLine {
  level: string;
  message: string;
  [meta: string]: unknown;
}

export function captureLogger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const stream = new Writable({
    objectMode: true,
    write(info: LogLine, _enc, done) {
      lines.push({ ...info });
      done();
    },
  });
  const log = createLogger({ level: 'debug', transports: [new winston.transports.Stream({ stream })] });
  return { log, lines };
}

export interface Harness {
  dir: string;
  runner: HookRunner;
  lines: LogLine[];
  /** Writes a file into the dir (mode 0755 when `exec`). */
  write(name: string, text: string, exec?: boolean): Promise<string>;
  close(): Promise<void>;
}

/** Files are written before the runner starts; `start: false` leaves starting to the test. */
export async function harness(
  files: Record<string, string>,
  opts: Partial<HookRunnerOptions> & { start?: boolean } = {},
): Promise<Harness> {
  const dir = await mkdtemp(path.join(tmpdir(), 'hooks-'));
  const { log, lines } = captureLogger();
  const write = async (name: string, text: string, exec = false) => {
    const file = path.join(dir, name);
    // The mode is set at creation, so the watcher never sees a not-yet-executable file.
    await writeFile(file, text, { mode: exec ? 0o755 : 0o644 });
    if (exec) await chmod(file, 0o755);
    return file;
  };
  for (const [name, text] of Object.entries(files)) await write(name, text, !name.endsWith('.js'));
  const runner = new HookRunner({ dir, log, timeoutMs: 300, watch: false, debounceMs: 20, ...opts });
  if (opts.start !== false) await runner.start();
  return {
    dir, runner, lines, write,
    async close() {
      await runner.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A normal hook, to check the pool still answers after something hostile. */
export const NORMAL_PHONE_HOOK = `module.exports = function (input) {
  return { data: { phone: input.params.phone.replace(/^\\+7/, '8') }, state: 'success' };
};
`;

export function messages(lines: LogLine[], level?: string): string[] {
  return lines.filter((l) => level === undefined || l.level === level).map((l) => l.message);
}
