import winston from 'winston';
import { redact } from './redact.ts';

export type Logger = winston.Logger;
export type LogFormat = 'text' | 'json';

export interface LoggerOptions {
  level?: string;
  format?: LogFormat;
  /** Extra transports (tests capture lines with a stream transport). */
  transports?: winston.transport[];
  silent?: boolean;
}

/** Masks secrets in the message and in every string-valued field, at the very end of the pipeline. */
const redactFormat = winston.format((info) => {
  const out = info as Record<string | symbol, unknown>;
  for (const key of Reflect.ownKeys(out)) {
    const value = out[key as string];
    if (typeof value === 'string') out[key as string] = redact(value);
  }
  return info;
});

const textLine = winston.format.printf((info) => {
  const { level, message, timestamp, component, callId, ...rest } = info as Record<string, unknown>;
  const tags = [component, callId].filter(Boolean).map((t) => `[${String(t)}]`).join(' ');
  const extra = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
  // One entry, one line: a CR/LF inside a message (remote text, a stack trace) must not start a forged entry.
  const text = String(message).replace(/\r?\n|\r/g, ' ⏎ ');
  return `${String(timestamp)} ${level} ${tags ? tags + ' ' : ''}${text}${extra}`;
});

/**
 * One logger per daemon instance (never a module singleton: tests run several daemons in one process).
 * Components take children: `log.child({ component: 'ami', pbx: 'main' })`.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const format = options.format ?? 'text';
  const base = format === 'json'
    ? winston.format.combine(winston.format.timestamp(), winston.format.json())
    : winston.format.combine(winston.format.timestamp(), textLine);
  return winston.createLogger({
    level: options.level ?? 'info',
    silent: options.silent ?? false,
    format: winston.format.combine(literalMessages(), base, redactFinal()),
    transports: options.transports ?? [new winston.transports.Console({ stderrLevels: ['error', 'warn'] })],
  });
}

/**
 * Messages carry remote text (AMI frames, HTTP paths). When one contains a printf token ('%s', '%o'), winston sets
 * the fields given with it (the error code) aside for format.splat() instead of merging them; splat would then
 * interpret the remote text. So no splat: the message stays literal and the fields are merged back here.
 */
const literalMessages = winston.format((info) => {
  const rec = info as unknown as Record<string | symbol, unknown>;
  const args = rec[Symbol.for('splat')];
  if (Array.isArray(args)) {
    for (const arg of args) if (arg && typeof arg === 'object' && !Array.isArray(arg)) Object.assign(info, arg);
    delete rec[Symbol.for('splat')];
  }
  return info;
});

/** The rendered line (Symbol.for('message')) is redacted too, whatever the format put in it. */
function redactFinal() {
  const MESSAGE = Symbol.for('message');
  return winston.format((info) => {
    redactFormat().transform(info);
    const rec = info as unknown as Record<symbol, unknown>;
    const line = rec[MESSAGE];
    if (typeof line === 'string') rec[MESSAGE] = redact(line);
    return info;
  })();
}

/** A logger that drops everything (CLI commands that print their own output, benchmarks). */
export function silentLogger(): Logger {
  return createLogger({ silent: true });
}
