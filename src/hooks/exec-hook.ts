/**
 * The exec form, for porting PHP (or any) customizations: an executable file that reads the input JSON on stdin and
 * writes the answer JSON on stdout. It runs with an empty environment except PATH, in its own process group so
 * that a timeout kills whatever it started too. Its stderr lines go to the daemon log like a JS hook's console.
 */
import { spawn } from 'node:child_process';

export type ExecResult =
  | { ok: true; out: string; logs: Array<[string, string]> }
  | { ok: false; error: string; logs: Array<[string, string]> };

const MAX_STDERR_LINES = 50;

export function runExecHook(file: string, input: string, opts: { timeoutMs: number; maxOutputBytes: number; cwd: string; signal?: AbortSignal }): Promise<ExecResult> {
  return new Promise<ExecResult>((resolve) => {
    let stdout = '';
    let stderr = '';
    let failure: string | undefined;
    let done = false;
    const child = spawn(file, [], {
      cwd: opts.cwd,
      env: { PATH: process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin' },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    const finish = (result: ExecResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      resolve(result);
    };
    const onAbort = () => {
      killGroup('the hook runner is stopped');
      finish({ ok: false, error: failure!, logs: [] });
    };
    const killGroup = (why: string) => {
      failure ??= why;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch { /* already gone */ }
    };
    const timer = setTimeout(() => {
      killGroup(`timed out after ${opts.timeoutMs} ms (killed)`);
      // Do not wait for 'close': a grandchild that escaped the group could keep the pipes open.
      finish({ ok: false, error: failure!, logs: stderrLines(stderr) });
    }, opts.timeoutMs);

    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener('abort', onAbort);

    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      if (stdout.length > opts.maxOutputBytes) killGroup(`its output is larger than ${opts.maxOutputBytes} bytes (killed)`);
    });
    child.stderr.on('data', (chunk: string) => { stderr = (stderr + chunk).slice(-16 * 1024); });
    child.stdin.on('error', () => { /* it exited without reading its input: the exit status tells the story */ });
    child.on('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'EACCES'
        ? 'is not executable (chmod +x it, and give it a #! line)'
        : err.code === 'ENOENT' ? 'cannot be executed: its #! interpreter was not found' : `cannot be executed: ${err.message}`;
      finish({ ok: false, error: why, logs: [] });
    });
    child.on('close', (code, signal) => {
      const logs = stderrLines(stderr);
      if (failure) return finish({ ok: false, error: failure, logs });
      if (code !== 0) {
        const last = logs.at(-1)?.[1];
        return finish({ ok: false, error: `exited with ${signal ?? `code ${String(code)}`}${last ? `: ${last}` : ''}`, logs });
      }
      const out = stdout.trim();
      try {
        JSON.parse(out);
      } catch {
        const shown = out.length > 80 ? `${out.slice(0, 80)}…` : out;
        return finish({ ok: false, error: `its stdout is not JSON: ${JSON.stringify(shown)}`, logs });
      }
      finish({ ok: true, out, logs });
    });
    child.stdin.end(input);
  });
}

function stderrLines(text: string): Array<[string, string]> {
  return text.split('\n').filter((l) => l.trim() !== '').slice(-MAX_STDERR_LINES).map((l) => ['warn', l] as [string, string]);
}
