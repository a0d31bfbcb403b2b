/**
 * The PBX's recording directory, faked: for every MixMonitor file a trace's header lists, a file of the recorded
 * size (44 bytes = a WAV header only: the call was never bridged) under a local folder standing for
 * /var/spool/asterisk/monitor, dated a minute ago (complete, as after the call).
 */
import { mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

export const PBX_MONITOR_DIR = '/var/spool/asterisk/monitor';

export function createRecordings(localDir: string, tracePaths: string[]): void {
  for (const path of tracePaths) {
    const header = JSON.parse(readFileSync(path, 'utf8').split('\n', 1)[0]!) as { expected?: { calls?: unknown[] } & Record<string, unknown> };
    const calls = (header.expected?.calls ?? [header.expected ?? {}]) as Array<{ crosscheck?: { recordings?: Array<{ path: string; bytes: number }> } }>;
    for (const call of calls) {
      for (const rec of call.crosscheck?.recordings ?? []) {
        const file = join(localDir, relative(PBX_MONITOR_DIR, rec.path));
        mkdirSync(join(file, '..'), { recursive: true });
        writeFileSync(file, Buffer.alloc(rec.bytes, 0));
        const minuteAgo = new Date(Date.now() - 60_000);
        utimesSync(file, minuteAgo, minuteAgo);
      }
    }
  }
}
