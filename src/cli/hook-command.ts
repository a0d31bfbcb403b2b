/**
 * `hook list | test <hook> [--input FILE|-] | sample <hook>`: lets an integrator see what the daemon loaded and
 * try a script exactly as the daemon runs it (same sandbox, limits and validation), without a call.
 */
import { readFile } from 'node:fs/promises';
import winston from 'winston';
import { HOOK_NAMES, resolveHookName, sampleInput, type HookName } from '../hooks/contract.ts';
import { HookRunner } from '../hooks/runner.ts';
import { HookValidators } from '../hooks/validate.ts';
import { createLogger } from '../log/logger.ts';
import { parseArgs, stringOption } from './args.ts';

export interface HookCommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
}

const USAGE = `usage: hook list
       hook test <hook> [--input FILE|-]   (default input: hook sample <hook>)
       hook sample <hook>
hooks: ${HOOK_NAMES.join(', ')}
`;

/** Exit codes: 0 done (ok or cancelled), 1 the hook failed or is missing, 2 usage or bad input. */
export async function runHookCommand(args: string[], io: HookCommandIo, opts: { dir: string; timeoutMs?: number }): Promise<number> {
  const parsed = parseArgs(args);
  const [sub, name] = parsed.positionals;
  const say = (text: string) => io.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  const complain = (text: string, code: number) => {
    io.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
    return code;
  };

  if (sub === 'list') return list(io, opts, say);
  if (sub !== 'test' && sub !== 'sample') return complain(USAGE, 2);
  const hook = name === undefined ? undefined : resolveHookName(name);
  if (!hook) return complain(`${name === undefined ? 'which hook?' : `unknown hook ${name}`}\n${USAGE}`, 2);
  if (sub === 'sample') {
    say(JSON.stringify(sampleInput(hook), null, 2));
    return 0;
  }

  const source = stringOption(parsed, 'input');
  let input: unknown;
  try {
    input = source === undefined ? sampleInput(hook) : JSON.parse(source === '-' ? await readAll(io.stdin) : await readFile(source, 'utf8'));
  } catch (err) {
    return complain(`cannot read the input ${source === '-' ? 'from stdin' : source}: ${(err as Error).message}`, 2);
  }
  // Itgrix inputs are {"params": {...}}; a bare params object is accepted too.
  if (input !== null && typeof input === 'object' && !Array.isArray(input) && Object.keys(input).join() !== 'params') input = { params: input };
  const checked = new HookValidators().checkInput(hook, input);
  if (!checked.ok) return complain(`the input does not match the ${hook} contract: ${checked.error}`, 2);
  return test(hook, (input as { params: never }).params, io, opts, say);
}

async function list(io: HookCommandIo, opts: { dir: string; timeoutMs?: number }, say: (t: string) => void): Promise<number> {
  const runner = quietRunner(io, opts);
  await runner.start();
  try {
    const items = runner.list();
    say(`customizations dir: ${opts.dir}`);
    if (items.length === 0) say('no hooks');
    for (const item of items) {
      say(`${item.hook.padEnd(31)} ${item.status.padEnd(6)} ${item.form.padEnd(4)} v${item.version}  ${item.file}`);
      if (item.lastError) say(`    ${item.status === 'active' ? 'last reload failed' : 'error'}: ${item.lastError}`);
    }
    return items.some((i) => i.status === 'error') ? 1 : 0;
  } finally {
    await runner.stop();
  }
}

async function test(hook: HookName, params: never, io: HookCommandIo, opts: { dir: string; timeoutMs?: number }, say: (t: string) => void): Promise<number> {
  const runner = quietRunner(io, opts);
  await runner.start();
  try {
    if (!runner.has(hook)) {
      const failed = runner.list().find((l) => l.hook === hook);
      io.stderr.write(failed ? `${hook}: ${failed.file} does not load: ${failed.lastError ?? 'error'}\n` : `no ${hook} file in ${opts.dir}\n`);
      return 1;
    }
    const outcome = await runner.run(hook, params, { callId: 'hook-test' });
    switch (outcome.status) {
      case 'ok': {
        const { status: _s, ms, ...rest } = outcome;
        say(JSON.stringify(rest, null, 2));
        say(`validation: ok, ${ms} ms`);
        return 0;
      }
      case 'cancelled':
        say(`cancelled by customization (empty data): the daemon would skip this request; ${outcome.ms} ms`);
        return 0;
      case 'error':
        say(`error: ${outcome.error}; ${outcome.ms} ms`);
        return 1;
      case 'absent':
        return 1;
    }
  } finally {
    await runner.stop();
  }
}

/**
 * The hook's console/stderr lines, warnings and errors go to stderr (the answer goes to stdout); the runner's own
 * info lines ("loaded ...") are dropped: `hook list` says the same.
 */
const hookLinesAndProblems = winston.format((info) => (info.level === 'info' && info['source'] === undefined ? false : info));

function quietRunner(io: HookCommandIo, opts: { dir: string; timeoutMs?: number }): HookRunner {
  const stream = new winston.transports.Stream({ stream: io.stderr, format: hookLinesAndProblems() });
  const log = createLogger({ level: 'info', transports: [stream] });
  return new HookRunner({ dir: opts.dir, log, watch: false, ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}) });
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += typeof chunk === 'string' ? chunk : (chunk as Buffer).toString('utf8');
  return text;
}
