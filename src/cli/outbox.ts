/**
 * `outbox list|retry [ID]|drop [ID] --config FILE`: the dead-letter list (requests Bitrix24 rejected for good),
 * read and changed in the state database, whether the daemon runs or not. `retry` makes them pending again with
 * a fresh attempt count; a running daemon picks them up within OUTBOX_RESCAN_MS, a stopped one at its next start.
 * Without an ID, retry/drop act on every dead letter.
 */
import { loadConfig } from '../config/load.ts';
import { OUTBOX_RESCAN_MS } from '../ops/ops.ts';
import { openStateOffline } from './state-offline.ts';

export async function outboxCommand(args: string[], configPath: string, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const [sub, idText, ...extra] = args;
  if (sub !== 'list' && sub !== 'retry' && sub !== 'drop') {
    err.write(`outbox: unknown subcommand ${sub ?? '(none)'}: use list, retry [ID] or drop [ID]\n`);
    return 2;
  }
  if (extra.length > 0 || (sub === 'list' && idText !== undefined) || (idText !== undefined && !/^[1-9]\d*$/.test(idText))) {
    err.write(`outbox ${sub}: ${sub === 'list' ? 'takes no argument' : `ID must be a dead letter's number (see outbox list), got ${JSON.stringify([idText, ...extra].join(' '))}`}\n`);
    return 2;
  }
  const id = idText === undefined ? undefined : Number(idText);
  const state = openStateOffline(loadConfig(configPath));
  try {
    const { outbox } = state;
    if (sub === 'list') {
      const dead = outbox.deadLetters();
      if (dead.length === 0) {
        out.write('no dead letters\n');
        return 0;
      }
      out.write(`${'ID'.padStart(6)}  ${'REQUEST'.padEnd(12)}  ${'CALL'.padEnd(28)}  ${'TRIES'.padStart(5)}  ${'FAILED AT'.padEnd(24)}  REASON\n`);
      for (const d of dead) {
        out.write(`${String(d.id).padStart(6)}  ${d.kind.padEnd(12)}  ${d.group.padEnd(28)}  ${String(d.attempts).padStart(5)}  ${new Date(d.failedAt).toISOString().padEnd(24)}  ${d.error.replace(/\s+/g, ' ')}\n`);
      }
      out.write(`${dead.length} dead letter(s); retry: outbox retry [ID], delete: outbox drop [ID]\n`);
      return 0;
    }
    const n = sub === 'retry' ? outbox.retryDead(id) : outbox.dropDead(id);
    if (n === 0) {
      err.write(id === undefined ? 'no dead letters\n' : `no dead letter with ID ${id} (see outbox list)\n`);
      return 1;
    }
    out.write(sub === 'retry'
      ? `${n} request(s) queued again; a running daemon sends them within ${OUTBOX_RESCAN_MS / 1000} s, a stopped one when it starts\n`
      : `${n} dead letter(s) deleted\n`);
    return 0;
  } finally {
    state.close();
  }
}
