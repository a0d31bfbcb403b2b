import { Writable } from 'node:stream';
import winston from 'winston';
import { BitrixClient } from '../../src/bitrix/client.ts';
import { LeakyBucket } from '../../src/bitrix/limiter.ts';
import { WebhookAuth } from '../../src/bitrix/webhook-auth.ts';
import type { BitrixAuth } from '../../src/bitrix/auth.ts';
import { createLogger, type Logger } from '../../src/log/logger.ts';
import { BitrixEmulator, type BitrixEmulatorOptions } from '../fakes/bitrix-emulator.ts';

/** A logger whose rendered lines are kept, to assert what reached the log. */
export function capturingLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { log: createLogger({ level: 'debug', transports: [new winston.transports.Stream({ stream })] }), lines };
}

export interface Rig {
  emu: BitrixEmulator;
  client: BitrixClient;
  limiter: LeakyBucket;
  lines: string[];
  close(): Promise<void>;
}

/** An emulator plus a client talking to it (webhook auth unless `auth` is given). */
export async function startRig(opts: BitrixEmulatorOptions = {}, make?: {
  auth?: (emu: BitrixEmulator) => BitrixAuth; limiter?: LeakyBucket; timeoutMs?: number;
}): Promise<Rig> {
  const emu = new BitrixEmulator(opts);
  await emu.listen();
  const limiter = make?.limiter ?? new LeakyBucket({ ratePerSec: 1000, burst: 1000 });
  const { log, lines } = capturingLogger();
  const auth = make?.auth ? make.auth(emu) : new WebhookAuth(emu.webhookUrl);
  const client = new BitrixClient(auth, limiter, log, make?.timeoutMs !== undefined ? { timeoutMs: make.timeoutMs } : {});
  return {
    emu, client, limiter, lines,
    async close() {
      client.close();
      limiter.close();
      await emu.close();
    },
  };
}

/** The rejection of `p`, failing the test if it resolves. */
export async function rejectionOf(p: Promise<unknown>): Promise<any> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection, the promise resolved');
}
