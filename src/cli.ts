/**
 * asterisk-bitrix24 command line. `npm start -- <command>` or the `asterisk-bitrix24` bin.
 *
 *   run --config FILE                 the daemon (systemd runs this)
 *   replay TRACE.jsonl [--config FILE] feed a recorded AMI trace through the daemon's code; print the Bitrix24
 *                                      requests it would make (nothing is sent)
 *   check --config FILE               validate the config, log in to AMI, call Bitrix24; print a checklist
 *   auth --config FILE --code CODE    exchange a local application's authorization code for tokens
 *   event-bind --config FILE [--offline]  bind ONEXTERNALCALLSTART / ONEXTERNALCALLBACKSTART to this daemon
 *   status --config FILE              the running daemon's health (or the state database when it is stopped)
 *   outbox list|retry [ID]|drop [ID] --config FILE   the dead-letter list
 *   hook list|test|sample …           customization scripts (see customizations/README.md)
 */
import { DaemonError } from './errors.ts';
import { parseArgs, stringOption } from './cli/args.ts';

const USAGE = `usage: asterisk-bitrix24 <command> [options]

  run --config FILE                   run the daemon
  replay TRACE.jsonl [--config FILE]  print the Bitrix24 requests a recorded AMI trace produces (sends nothing)
  check --config FILE                 validate config, test AMI login and Bitrix24 access, show the user map
  auth --config FILE --code CODE      store OAuth tokens of the local application (portals that cannot reach us)
  event-bind --config FILE [--offline] bind the click-to-call and callback events to this daemon
  status --config FILE                health of the running daemon (AMI, Bitrix24, queue, hooks, calls)
  outbox list|retry [ID]|drop [ID] --config FILE
                                      dead letters: list them, queue them again, delete them
  hook list|test|sample ...           customization scripts: hook list [--config FILE],
                                      hook test <hook> [--input FILE|-] [--config FILE], hook sample <hook>
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const args = parseArgs(rest, ['offline']);
  const config = stringOption(args, 'config');
  switch (command) {
    case 'run':
      if (!config) return usage('run needs --config FILE');
      return (await import('./cli/run.ts')).runCommand(config);
    case 'replay': {
      const trace = args.positionals[0];
      if (!trace) return usage('replay needs a trace file');
      return (await import('./cli/replay.ts')).replayCommand(trace, config, process.stdout);
    }
    case 'check':
      if (!config) return usage('check needs --config FILE');
      return (await import('./cli/check.ts')).checkCommand(config, process.stdout);
    case 'auth': {
      const code = stringOption(args, 'code');
      if (!config || !code) return usage('auth needs --config FILE and --code CODE');
      return (await import('./cli/auth.ts')).authCommand(config, code, process.stdout);
    }
    case 'event-bind':
      if (!config) return usage('event-bind needs --config FILE');
      return (await import('./cli/event-bind.ts')).eventBindCommand(config, args.options['offline'] === true, process.stdout);
    case 'status':
      if (!config) return usage('status needs --config FILE');
      return (await import('./cli/status.ts')).statusCommand(config, process.stdout);
    case 'outbox':
      if (!config) return usage('outbox needs --config FILE');
      return (await import('./cli/outbox.ts')).outboxCommand(args.positionals, config, process.stdout, process.stderr);
    case 'hook': {
      const { hookCommand } = await import('./cli/hook.ts');
      return hookCommand(rest, config);
    }
    case undefined:
    case 'help':
    case '--help':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      return usage(`unknown command ${command}`);
  }
}

function usage(problem: string): number {
  process.stderr.write(`${problem}\n\n${USAGE}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    // Config and startup errors are for the admin: the message, not a stack trace.
    if (err instanceof DaemonError) process.stderr.write(`${err.code}: ${err.message}\n`);
    else process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  },
);
