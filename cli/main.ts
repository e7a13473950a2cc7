// The ccekit command line: `emit` (kernels + manifest for a target), `run` (a random problem on a device,
// checked against the float64 reference), `start` (the main job on the best device available).
// Usage mistakes and library errors print one line `ccekit: ...` to stderr and exit 2, never a stack.
import { realpathSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ScheduleError } from '../codegen/schedule.js';
import { DslError } from '../dsl/values.js';
import { VerifyError } from '../codegen/verify.js';
import { WebgpuError } from '../runtime/webgpu/device.js';
import { CceInputError } from '../runtime/problem.js';
import { UsageError, isHelp, oneLine } from './args.js';
import { OutPathError } from '../runtime/fsout.js';
import { BENCH_HELP, CHECK_HELP, cmdBench, cmdCheck } from './gpu.js';
import { TUNE_HELP, cmdTune } from './tune.js';
import { CliError, err, out } from './common.js';
import { EMIT_HELP, cmdEmit } from './emit.js';
import { RUN_HELP, cmdRun } from './run.js';
import { START_HELP, cmdStart } from './start.js';
import { PLAN_HELP, cmdPlan } from './plan.js';

// ---------------------------------------------------------------- dispatch

const COMMANDS: Record<string, { help: string; summary: string; run: (argv: string[]) => Promise<number> }> = {
  emit: { help: EMIT_HELP, summary: 'generate WGSL / CUDA / Triton kernels and a manifest.json', run: cmdEmit },
  run: { help: RUN_HELP, summary: 'run on a random problem and compare with the float64 reference', run: cmdRun },
  start: { help: START_HELP, summary: 'the main job on the best device available (npm start)', run: cmdStart },
  check: {
    help: CHECK_HELP,
    summary: 'the correctness suite on a GPU (cuda or webgpu) against the float64 reference',
    run: cmdCheck,
  },
  bench: { help: BENCH_HELP, summary: 'time CCE- at the paper-matched settings on a GPU', run: cmdBench },
  tune: { help: TUNE_HELP, summary: 'autotune schedules per problem size into the persistent tuning DB', run: cmdTune },
  plan: { help: PLAN_HELP, summary: 'peak memory and step time of SASRec training steps under a budget', run: cmdPlan },
};

const MAIN_HELP = [
  'ccekit: a compiler of GPU kernels for CCE- (cross-entropy with negative sampling, no materialized logits)',
  '',
  'usage: ccekit <command> [flags]',
  '',
  'commands:',
  ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(6)}  ${c.summary}`),
  `  ${'help'.padEnd(6)}  ccekit help <command> prints the flags of a command`,
  '',
  'examples:',
  '  ccekit emit --target cuda --dtype bf16 --out out/cuda',
  '  ccekit emit --target all --out out --transform softcap.ts:softcap',
  '  ccekit run --device cpu --n 513 --v 1000 --k 64 --d 64 --popularity',
  '  ccekit start',
  '',
  'Run `ccekit <command> --help` for its flags.',
].join('\n');

const LIBRARY_ERRORS = [CliError, CceInputError, ScheduleError, VerifyError, DslError, WebgpuError, OutPathError];

export async function main(argv: readonly string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  let name = cmd ?? '';
  try {
    if (cmd === undefined || cmd === '--help' || cmd === '-h') {
      out(MAIN_HELP);
      return 0;
    }
    if (cmd === 'help') {
      const words = rest.filter((a) => a !== '--help' && a !== '-h');
      const which = words[0];
      if (words.length > 1) throw new UsageError(`help takes one command, got ${words.length}: ${words.join(' ')}`, '');
      if (which === undefined || which === 'help') out(MAIN_HELP);
      else if (Object.hasOwn(COMMANDS, which)) out(COMMANDS[which]!.help);
      else throw new UsageError(`unknown command '${which}'`, '');
      return 0;
    }
    const c = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
    if (!c) {
      name = '';
      const why = cmd.startsWith('-')
        ? `unknown flag ${cmd.split('=')[0]}; flags go after the command`
        : `unknown command '${cmd}'`;
      throw new UsageError(why, '');
    }
    if (isHelp(rest)) {
      out(c.help);
      return 0;
    }
    return await c.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      err(`ccekit: ${oneLine(e.message)} (see ccekit ${e.command ? e.command + ' ' : ''}--help)`);
      return 2;
    }
    const msg = oneLine(e instanceof Error ? e.message : String(e));
    if (LIBRARY_ERRORS.some((k) => e instanceof k) || (e instanceof Error && e.name === 'FrontendError')) {
      err(`ccekit: ${msg}`);
      return 2;
    }
    if (process.env.CCEKIT_DEBUG) err(e instanceof Error && e.stack ? e.stack : String(e));
    err(`ccekit: internal error in '${name}': ${msg} (CCEKIT_DEBUG=1 shows the stack)`);
    return 1;
  }
}

/**
 * Whether this module is the program: `node cli/main.ts`, `tsx cli/main.ts`, or the bundle imported by
 * bin/ccekit.js. Tests import it and call main() in-process, which must not run the command line.
 */
function isProgram(): boolean {
  const argv1 = process.argv[1];
  if (!argv1) return false;
  let entry: string;
  try {
    entry = realpathSync(argv1);
  } catch {
    entry = resolve(argv1);
  }
  const self = fileURLToPath(import.meta.url);
  return entry === self || entry === resolve(dirname(self), '..', 'bin', 'ccekit.js');
}

if (isProgram()) {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
  process.exitCode = await main(process.argv.slice(2));
}
