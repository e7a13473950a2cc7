// Bad input to the ccekit CLI, table-driven: every case ends in exit 2 with exactly one stderr line
// `ccekit: ...` that names the argument at fault, within 2 s, writing nothing (no stdout, no file, no folder).
// Cases run in-process through main() (fast); the paths that used to hang (/proc, /sys) run as child processes
// with a kill timeout, so that a hang fails the test instead of stalling the suite.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SCHEDULE } from '../codegen/schedule.js';
import { TUNING_SCHEMA, TuningDb } from '../runtime/autotune/db.js';
import { WEBGPU_SCHEDULE } from '../runtime/webgpu/run.js';
import { OutPathError, checkOutDir, checkOutFile, makeOutDir, writeOutFile } from '../runtime/fsout.js';
import { type CliResult, mainCaptured, spawnCli } from './support/cli.js';

const box = mkdtempSync(join(tmpdir(), 'ccekit-bad-'));
const cache = join(box, 'cache');
afterAll(() => {
  try {
    chmodSync(join(box, 'readonly'), 0o755);
  } catch {
    /* not made */
  }
  rmSync(box, { recursive: true, force: true });
});

// ---- fixtures (made once; a case must leave them, and everything else under box, as they are) ----
const FILE = join(box, 'afile');
const DIR = join(box, 'adir');
const BAD_JSON = join(box, 'bad.json');
const LANES_STRING = join(box, 'lanes-string.json');
const LIST_BAD = join(box, 'list-bad.json');
const EMPTY = join(box, 'empty.json');
const DB_TRUNCATED = join(box, 'db-truncated.json');
const DB_GARBAGE = join(box, 'db-garbage.bin');
const DB_SCHEMA = join(box, 'db-schema.json');
const DB_ENTRIES = join(box, 'db-entries.json');
const READONLY = join(box, 'readonly');
const isRoot = process.getuid?.() === 0;
mkdirSync(cache);
writeFileSync(FILE, 'not a folder\n');
mkdirSync(DIR);
writeFileSync(join(DIR, 'keep'), 'x');
writeFileSync(BAD_JSON, '{"lanes": 8');
writeFileSync(LANES_STRING, '{"lanes":"32"}');
writeFileSync(LIST_BAD, '[{"vec":3}]');
writeFileSync(EMPTY, '');
writeFileSync(DB_TRUNCATED, `{"schema": "${TUNING_SCHEMA}", "entries": {"k": {"key": {"dev`);
writeFileSync(DB_GARBAGE, Buffer.from([0x00, 0xff, 0x13, 0x37, 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a]));
writeFileSync(DB_SCHEMA, JSON.stringify({ schema: 'other/1', entries: {} }));
writeFileSync(DB_ENTRIES, JSON.stringify({ schema: TUNING_SCHEMA, entries: [] }));
mkdirSync(READONLY);
writeFileSync(join(READONLY, 'keep'), 'x');
chmodSync(READONLY, 0o555);
// Root writes into a 0555 folder; a folder of sysfs refuses even root.
const READONLY_OUT = isRoot ? '/sys/kernel/ccekit-x' : join(READONLY, 'x');

/** Every path under box with its size (folders: -1). */
function snapshot(dir = box, out = new Map<string, number>()): Map<string, number> {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    let st;
    try {
      st = statSync(p);
    } catch {
      continue;
    }
    out.set(p, st.isDirectory() ? -1 : st.size);
    if (st.isDirectory()) snapshot(p, out);
  }
  return out;
}

type Result = CliResult;

let main: (argv: readonly string[]) => Promise<number>;

const inProcess = (args: readonly string[]): Promise<Result> => mainCaptured(main, args);
/** The CLI in a child process (`node --import tsx cli/main.ts`), killed after `limitMs`. */
const spawned = (args: readonly string[], limitMs = 60_000) => spawnCli(args, { env: { CCEKIT_CACHE: cache }, limitMs });

/** Exit 2, no stdout, exactly one stderr line `ccekit: ...` holding every fragment, no stack, no internal error. */
function expectOneLine(r: Result, fragments: readonly string[]): void {
  expect(r.code, r.stderr).toBe(2);
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^ccekit: /);
  expect(lines[0]).not.toMatch(/internal error/);
  for (const f of fragments) expect(lines[0], `expected '${f}' in: ${lines[0]}`).toContain(f);
  expect(r.stdout).toBe('');
}

type Case = [name: string, args: readonly string[], names: readonly string[]];

const out = (sub: string) => join(box, 'never', sub);

const CASES: Case[] = [
  // ---- sizes: checked before anything is allocated (the issue: 129 s and 14 GB, or an internal error) ----
  ['N·K over 2^31 (issue)', ['run', '--device', 'cpu', '--n', '3000000', '--k', '1000'], ['--n', '--k', '3000000000']],
  ['N of 5e9 (issue)', ['run', '--n', '5000000000'], ['--n', '5000000000']],
  ['V of 5e9 (issue)', ['run', '--v', '5000000000'], ['--v', '5000000000']],
  ['D of 3e9 (issue)', ['run', '--d', '3000000000'], ['--d', '3000000000']],
  ['K of 5e9', ['run', '--k', '5000000000'], ['--k']],
  ['N·D over 2^31', ['run', '--n', '40000000', '--d', '64'], ['--n', '--d', 'N·D']],
  ['V·D over 2^31', ['run', '--v', '40000000', '--d', '64'], ['--v', '--d', 'V·D']],
  ['N·D over 2^31, full mode', ['run', '--mode', 'full', '--n', '3000000', '--d', '1000'], ['--n', '--d']],
  ['N·K just over 2^31', ['run', '--n', '2147484', '--k', '1000', '--d', '1'], ['--n', '--k']],
  ['host memory over --max-gib', ['run', '--n', '2000000', '--k', '1000'], ['--max-gib', '--n 2000000', '--k 1000']],
  [
    'host memory over a small --max-gib',
    ['run', '--n', '100000', '--d', '1024', '--max-gib', '0.1'],
    ['--max-gib', '--d 1024'],
  ],
  ['N = 0', ['run', '--n', '0'], ['--n']],
  ['V = 1', ['run', '--v', '1'], ['--v']],
  ['K = 0', ['run', '--k', '0'], ['--k']],
  ['D negative', ['run', '--d', '-1'], ['--d']],
  ['--max-gib negative', ['run', '--max-gib', '-1'], ['--max-gib']],
  // ---- integers are decimal digits only ----
  ['--n hex (issue)', ['run', '--n', '0x10'], ['--n', '0x10']],
  ['--n hex with =', ['run', '--n=0x10'], ['--n', '0x10']],
  ['--n exponent', ['run', '--n', '1e3'], ['--n', '1e3']],
  ['--n leading space', ['run', '--n', ' 5'], ['--n']],
  ['--n trailing space', ['run', '--n', '5 '], ['--n']],
  ['--n plus sign', ['run', '--n', '+5'], ['--n', '+5']],
  ['--n binary', ['run', '--n', '0b1'], ['--n', '0b1']],
  ['--n octal', ['run', '--n', '0o7'], ['--n', '0o7']],
  ['--n separator', ['run', '--n', '1_000'], ['--n', '1_000']],
  ['--n fraction', ['run', '--n', '1.5'], ['--n', '1.5']],
  ['--n 5.0', ['run', '--n', '5.0'], ['--n', '5.0']],
  ['--n empty', ['run', '--n='], ['--n']],
  ['--n word', ['run', '--n', 'abc'], ['--n', 'abc']],
  ['--seed beyond 2^53', ['run', '--seed', '9007199254740993'], ['--seed']],
  ['--seed hex', ['run', '--seed', '0x1'], ['--seed']],
  ['--repeats exponent', ['run', '--repeats', '1e3'], ['--repeats']],
  ['check --seed exponent', ['check', '--device', 'cpu', '--seed', '1e3'], ['--seed']],
  ['--collisions above 1', ['run', '--collisions', '2'], ['--collisions']],
  ['--collisions hex', ['run', '--collisions', '0x1'], ['--collisions']],
  ['--tol word', ['run', '--tol', 'abc'], ['--tol']],
  ['--tol Infinity', ['run', '--tol', 'Infinity'], ['--tol']],
  ['--ignore NaN', ['run', '--ignore', 'NaN'], ['--ignore']],
  // ---- repeated flags, missing values, unknown flags and commands ----
  ['repeated --n (issue)', ['run', '--n', '5', '--n', '6'], ['--n']],
  ['repeated --n with =', ['run', '--n=5', '--n', '6'], ['--n']],
  ['repeated --target', ['emit', '--target', 'cuda', '--target', 'wgsl', '--out', out('a')], ['--target']],
  ['repeated switch', ['check', '--device', 'cpu', '--quick', '--quick'], ['--quick']],
  ['repeated --dtype', ['bench', '--dtype', 'f16', '--dtype', 'f32'], ['--dtype']],
  ['--d without a value', ['run', '--d'], ['--d needs a value']],
  ['--seed before another flag', ['run', '--seed', '--n', '5'], ['--seed needs a value']],
  ['unknown flag', ['run', '--bogus', '1'], ['--bogus']],
  ['a flag of another command', ['run', '--quick'], ['--quick']],
  ['positional argument', ['run', 'extra'], ["'extra'"]],
  ['switch with a value', ['check', '--quick=maybe'], ['--quick']],
  ['unknown command', ['frobnicate'], ["'frobnicate'"]],
  ['flag before the command', ['--n', '5'], ['--n']],
  ['help of an unknown command', ['help', 'frobnicate'], ["'frobnicate'"]],
  ['help with two commands', ['help', 'run', 'emit'], ['help']],
  ['bad --dtype', ['run', '--dtype', 'f64'], ['--dtype', 'f64']],
  ['bad --device', ['run', '--device', 'tpu'], ['--device', 'tpu']],
  ['bad --mode', ['run', '--mode', 'partial'], ['--mode']],
  ['bad --target', ['emit', '--target', 'metal', '--out', out('b')], ['--target', 'metal']],
  ['--popularity with --mode full', ['run', '--mode', 'full', '--popularity'], ['--popularity']],
  ['--collisions with --mode full', ['run', '--mode', 'full', '--collisions', '0.1'], ['--collisions']],
  ['--k with --mode full', ['run', '--mode', 'full', '--k', '8'], ['--k', '--mode sampled']],
  ['emit torch with --share', ['emit', '--target', 'torch', '--out', out('w'), '--share', '32'], ['--share', 'torch']],
  [
    'emit torch with --variants',
    ['emit', '--target', 'torch', '--out', out('x'), '--variants', 'full'],
    ['--variants'],
  ],
  // ---- schedules: one parser for every JSON-or-file flag ----
  [
    '--schedule lanes as a string (issue)',
    ['run', '--schedule', '{"lanes":"32"}'],
    ['--schedule', 'lanes', 'must be a number', '"32"'],
  ],
  [
    '--schedule from a file, lanes as a string',
    ['run', '--schedule', LANES_STRING],
    ['--schedule', 'lanes', 'must be a number'],
  ],
  ['--schedule lanes null', ['run', '--schedule', '{"lanes":null}'], ['--schedule', 'lanes', 'null']],
  ['--schedule lanes true', ['run', '--schedule', '{"lanes":true}'], ['--schedule', 'lanes', 'true']],
  ['--schedule lanes 3', ['run', '--schedule', '{"lanes":3}'], ['--schedule', 'lanes', 'got 3']],
  ['--schedule bad JSON', ['run', '--schedule', '{bad'], ['--schedule', 'JSON']],
  ['--schedule bad JSON file', ['run', '--schedule', BAD_JSON], ['--schedule', BAD_JSON, 'JSON']],
  ['--schedule empty file', ['run', '--schedule', EMPTY], ['--schedule', 'JSON']],
  ['--schedule unknown field', ['run', '--schedule', '{"foo":1}'], ['--schedule', "'foo'"]],
  ['--schedule a list', ['run', '--schedule', '[1]'], ['--schedule', 'object']],
  ['--schedule missing file', ['run', '--schedule', join(box, 'missing.json')], ['--schedule', 'missing.json']],
  ['--schedule a folder', ['run', '--schedule', DIR], ['--schedule', 'folder']],
  ['--schedule /dev/zero', ['run', '--schedule', '/dev/zero'], ['--schedule', '/dev/zero']],
  ['--rows 3', ['run', '--rows', '3'], ['--rows', 'got 3']],
  ['--vec 3', ['run', '--vec', '3'], ['--vec']],
  ['--samples-per-step 128', ['run', '--samples-per-step', '128'], ['--samples-per-step']],
  ['--stages 0', ['run', '--stages', '0'], ['--stages']],
  ['--d-chunks 512', ['emit', '--target', 'cuda', '--out', out('c'), '--d-chunks', '512'], ['--d-chunks']],
  ['check --schedule bad JSON (issue)', ['check', '--device', 'cpu', '--schedule', '{bad'], ['--schedule', 'JSON']],
  ['check --schedule bad JSON file', ['check', '--device', 'cpu', '--schedule', BAD_JSON], ['--schedule', BAD_JSON]],
  [
    'check --schedule lanes as a string',
    ['check', '--device', 'cpu', '--schedule', '{"lanes":"8"}'],
    ['--schedule', 'lanes', 'number'],
  ],
  ['check --schedule rows 3', ['check', '--device', 'cpu', '--schedule', '{"rows":3}'], ['--schedule', 'rows']],
  [
    'check --schedule missing file',
    ['check', '--device', 'webgpu', '--schedule', join(box, 'nope.json')],
    ['--schedule', 'nope.json'],
  ],
  ['bench --schedules bad JSON (issue)', ['bench', '--schedules', '{bad'], ['--schedules', 'JSON']],
  ['bench --schedules not a list', ['bench', '--schedules', '{}'], ['--schedules', 'list']],
  ['bench --schedules empty list', ['bench', '--schedules', '[]'], ['--schedules', 'empty']],
  [
    'bench --schedules element lanes string',
    ['bench', '--schedules', '[{"lanes":"8"}]'],
    ['--schedules[0]', 'lanes', 'number'],
  ],
  ['bench --schedules file of a bad element', ['bench', '--schedules', LIST_BAD], ['--schedules[0]', 'vec']],
  ['bench --schedules missing file', ['bench', '--schedules', join(box, 'gone.json')], ['--schedules', 'gone.json']],
  [
    'bench --reduce-schedule bad JSON (issue)',
    ['bench', '--by-item', '--reduce-schedule', '{bad'],
    ['--reduce-schedule', 'JSON'],
  ],
  [
    'bench --reduce-schedule vec 3',
    ['bench', '--by-item', '--reduce-schedule', '{"vec":3}'],
    ['--reduce-schedule', 'vec'],
  ],
  [
    'bench --reduce-schedule without --by-item',
    ['bench', '--reduce-schedule', '{}'],
    ['--reduce-schedule', '--by-item'],
  ],
  ['bench --two-word-pairs without --by-item', ['bench', '--two-word-pairs'], ['--two-word-pairs', '--by-item']],
  ['bench webgpu --db', ['bench', '--device', 'webgpu', '--db', FILE], ['--db']],
  ['emit --schedule bad JSON', ['emit', '--target', 'cuda', '--out', out('d'), '--schedule', '{bad'], ['--schedule']],
  ['emit torch with --lanes', ['emit', '--target', 'torch', '--out', out('e'), '--lanes', '8'], ['--lanes', 'torch']],
  [
    'emit torch with --transform',
    ['emit', '--target', 'torch', '--out', out('f'), '--transform', `${FILE}:f`],
    ['--transform', 'torch'],
  ],
  [
    'emit torch with --schedule',
    ['emit', '--target', 'torch', '--out', out('v'), '--schedule', '{}'],
    ['--schedule', 'torch'],
  ],
  // ---- output paths ----
  ['emit --out a file', ['emit', '--target', 'cuda', '--out', FILE], ['--out', FILE]],
  ['emit --out under a file', ['emit', '--target', 'wgsl', '--out', join(FILE, 'sub')], ['--out', FILE]],
  ['emit --target all --out under a file', ['emit', '--target', 'all', '--out', join(FILE, 'a', 'b')], ['--out']],
  ['emit torch --out a file', ['emit', '--target', 'torch', '--out', FILE], ['--out', FILE]],
  ['emit --out read-only', ['emit', '--target', 'triton', '--out', READONLY_OUT], ['--out', READONLY_OUT]],
  ['emit --out /sys/x', ['emit', '--target', 'cuda', '--out', '/sys/ccekit-x'], ['--out', '/sys/ccekit-x']],
  ['emit --out /proc/self', ['emit', '--target', 'cuda', '--out', '/proc/self/ccekit-x/y'], ['--out']],
  ['emit without --out', ['emit', '--target', 'cuda'], ['--out']],
  ['emit without --target', ['emit', '--out', out('g')], ['--target']],
  ['start --out a file', ['start', '--out', FILE], ['--out', FILE]],
  ['check --out a folder', ['check', '--device', 'cpu', '--out', DIR], ['--out', DIR]],
  ['check --out under a file', ['check', '--device', 'cpu', '--out', join(FILE, 'rows.json')], ['--out']],
  ['check --out under /proc', ['check', '--device', 'cpu', '--out', '/proc/ccekit-x/rows.json'], ['--out']],
  ['bench --out under /proc', ['bench', '--out', '/proc/ccekit-x/rows.json'], ['--out']],
  ['bench --out read-only', ['bench', '--out', join(READONLY_OUT, 'rows.json')], ['--out']],
  // ---- tuning DB files ----
  [
    'emit torch --db missing (issue)',
    ['emit', '--target', 'torch', '--out', out('h'), '--db', join(box, 'no-db.json')],
    ['--db', 'no-db.json'],
  ],
  [
    'emit torch --db truncated (issue)',
    ['emit', '--target', 'torch', '--out', out('i'), '--db', DB_TRUNCATED],
    ['--db', 'JSON'],
  ],
  [
    'emit torch --db garbage (issue)',
    ['emit', '--target', 'torch', '--out', out('j'), '--db', DB_GARBAGE],
    ['--db', 'JSON'],
  ],
  ['emit torch --db empty', ['emit', '--target', 'torch', '--out', out('k'), '--db', EMPTY], ['--db', 'empty']],
  ['emit torch --db a folder', ['emit', '--target', 'torch', '--out', out('l'), '--db', DIR], ['--db', 'folder']],
  [
    'emit torch --db another schema',
    ['emit', '--target', 'torch', '--out', out('m'), '--db', DB_SCHEMA],
    ['--db', TUNING_SCHEMA],
  ],
  [
    'emit torch --db entries a list',
    ['emit', '--target', 'torch', '--out', out('n'), '--db', DB_ENTRIES],
    ['--db', 'entries'],
  ],
  ['emit torch --db /dev/zero', ['emit', '--target', 'torch', '--out', out('o'), '--db', '/dev/zero'], ['--db']],
  ['emit cuda --db', ['emit', '--target', 'cuda', '--out', out('p'), '--db', FILE], ['--db', 'torch']],
  [
    'emit cuda --d-values',
    ['emit', '--target', 'cuda', '--out', out('q'), '--d-values', '64'],
    ['--d-values', 'torch'],
  ],
  [
    'emit torch --d-values hex',
    ['emit', '--target', 'torch', '--out', out('r'), '--d-values', '0x10'],
    ['--d-values', '0x10'],
  ],
  [
    'emit torch --d-values empty item',
    ['emit', '--target', 'torch', '--out', out('s'), '--d-values', '64,,128'],
    ['--d-values'],
  ],
  [
    'emit torch --d-values too large',
    ['emit', '--target', 'torch', '--out', out('t'), '--d-values', '9000'],
    ['--d-values'],
  ],
  ['bench --db missing', ['bench', '--db', join(box, 'no-db.json')], ['--db', 'no-db.json']],
  ['bench --db a folder', ['bench', '--db', DIR], ['--db', DIR]],
  ['bench --db truncated', ['bench', '--db', DB_TRUNCATED], ['--db', 'JSON']],
  ['bench --db another schema', ['bench', '--db', DB_SCHEMA], ['--db', TUNING_SCHEMA]],
  ['tune --db a folder', ['tune', '--db', DIR], ['--db', DIR]],
  ['tune --db under /proc', ['tune', '--db', '/proc/ccekit-x/tuning.json'], ['--db']],
  // ---- lists, shares, settings, scalar function files ----
  ['tune --share 12', ['tune', '--share', '16,12'], ['--share', 'got 12']],
  ['tune --share hex', ['tune', '--share', '0x10'], ['--share', '0x10']],
  ['tune --share word', ['tune', '--share', '64,x'], ['--share', "'64,x'"]],
  ['tune unknown setting', ['tune', '--settings', 'nope'], ['--settings', "'nope'"]],
  ['bench unknown setting', ['bench', '--settings', 'beauty,nope'], ['--settings', "'nope'"]],
  ['check --share 12', ['check', '--device', 'cpu', '--share', '12'], ['--share', 'got 12']],
  ['emit --share 24', ['emit', '--target', 'cuda', '--out', out('u'), '--share', '24'], ['--share']],
  ['--transform missing file', ['run', '--transform', join(box, 'nofile.ts:f')], ['--transform', 'nofile.ts']],
  ['--transform without :NAME', ['run', '--transform', FILE], ['--transform', 'FILE:NAME']],
  ['--transform a folder', ['run', '--transform', `${DIR}:f`], ['--transform', 'folder']],
  ['--correction /dev/zero', ['run', '--correction', '/dev/zero:f'], ['--correction', '/dev/zero']],
];

describe('bad input to the CLI: one line naming the argument, exit 2, nothing written', () => {
  beforeAll(async () => {
    process.env.CCEKIT_CACHE = cache;
    process.env.CCEKIT_DEBUG = '';
    ({ main } = await import('../cli/main.js'));
  });

  it('has distinct cases', () => {
    expect(new Set(CASES.map((c) => c[0])).size).toBe(CASES.length);
    expect(new Set(CASES.map((c) => JSON.stringify(c[1]))).size).toBe(CASES.length);
    expect(CASES.length).toBeGreaterThanOrEqual(80);
  });

  it.each(CASES)('%s', async (_name, args, names) => {
    const before = snapshot();
    const rss = process.memoryUsage().rss;
    const r = await inProcess(args);
    expectOneLine(r, names);
    expect(r.ms).toBeLessThan(2000);
    expect(process.memoryUsage().rss - rss).toBeLessThan(500 * 2 ** 20);
    expect(snapshot()).toEqual(before);
  });
});

describe('paths that used to hang (child processes, killed after 60 s)', () => {
  const HANGS: Case[] = [
    [
      'emit cuda --out /proc/x (issue)',
      ['emit', '--target', 'cuda', '--out', '/proc/ccekit-x'],
      ['--out', '/proc/ccekit-x'],
    ],
    [
      'emit torch --out /proc/x (issue)',
      ['emit', '--target', 'torch', '--out', '/proc/ccekit-x'],
      ['--out', '/proc/ccekit-x'],
    ],
    ['start --out /proc/x (issue)', ['start', '--out', '/proc/ccekit-x'], ['--out', '/proc/ccekit-x']],
    ['emit all --out /sys/x/y', ['emit', '--target', 'all', '--out', '/sys/ccekit-x/y'], ['--out', '/sys/ccekit-x/y']],
  ];
  it('end in one line, exit 2, within 2 s of a plain `help`', async () => {
    const base = await spawned(['help']);
    expect(base.code).toBe(0);
    const results = await Promise.all(HANGS.map(([, args]) => spawned(args)));
    const slowest = Math.max(base.ms, ...results.map((r) => r.ms));
    for (const [i, r] of results.entries()) {
      expect(r.killed, HANGS[i]![0]).toBe(false);
      expectOneLine(r, HANGS[i]![2]);
    }
    // All ran at once on a shared machine: each ends within 2 s of the slowest start-up.
    expect(Math.max(...results.map((r) => r.ms))).toBeLessThan(slowest + 2000);
  });
});

describe('help and usage', () => {
  it('help --help, help help and help -h print the main help', async () => {
    for (const args of [['help', '--help'], ['help', 'help'], ['help', '-h']]) {
      const r = await inProcess(args);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('usage: ccekit <command>');
    }
    const run = await inProcess(['help', 'run', '--help']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('usage: ccekit run');
  });
  it("emit --help's synopsis lists torch", async () => {
    const r = await inProcess(['emit', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/--target wgsl\|cuda\|triton\|torch\|all/);
  });
  it('keeps negative integers where a flag allows them', async () => {
    const r = await inProcess(['run', '--n', '3', '--v', '7', '--k', '2', '--d', '2', '--seed', '-5']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('seed=-5');
  });
});

describe('tuning DB warnings', () => {
  it('are printed to stderr once per process', async () => {
    const { openDb, printDbWarnings } = await import('../cli/gpu.js');
    const path = join(box, 'warn-db', 'tuning.json');
    mkdirSync(join(box, 'warn-db'));
    writeFileSync(path, JSON.stringify({ schema: TUNING_SCHEMA, entries: { x: { key: 'not an object' } } }));
    let stderr = '';
    const w = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => ((stderr += s), true)) as typeof process.stderr.write;
    try {
      const db = openDb(path);
      printDbWarnings(db);
      printDbWarnings(new TuningDb(path));
    } finally {
      process.stderr.write = w;
    }
    const lines = stderr.split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^ccekit: warning: .*skipped entry x/);
  });
});

describe('good input next to the bad', () => {
  it('check merges a partial --schedule (JSON or a file) over the device default, as run does', async () => {
    const { checkSchedule } = await import('../cli/gpu.js');
    expect(checkSchedule('cpu', '{"lanes":8}')).toEqual({ ...DEFAULT_SCHEDULE, lanes: 8 });
    expect(checkSchedule('cuda', '{"rows":2}')).toEqual({ ...DEFAULT_SCHEDULE, rows: 2 });
    expect(checkSchedule('webgpu', '{"vec":2}')).toEqual({ ...WEBGPU_SCHEDULE, vec: 2 });
    const file = join(box, 'good-schedule.json');
    writeFileSync(file, '{"samplesPerStep": 8, "stages": 1}');
    expect(checkSchedule('cpu', file)).toEqual({ ...DEFAULT_SCHEDULE, samplesPerStep: 8, stages: 1 });
    rmSync(file);
  });

  it('emit creates a missing folder and its parents, level by level', async () => {
    const dir = join(box, 'made', 'a', 'b');
    const r = await inProcess(['emit', '--target', 'wgsl', '--variants', 'full', '--out', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(dir)).toContain('manifest.json');
    expect(readdirSync(join(box, 'made'))).toEqual(['a']); // no probe folder left behind
    rmSync(join(box, 'made'), { recursive: true });
  });

  it('fsout: check* create nothing, make*/write* create the parents, errors name the flag', () => {
    const deep = join(box, 'fs', 'x', 'y');
    checkOutDir(deep, '--out');
    checkOutFile(join(deep, 'f.json'), '--out');
    expect(readdirSync(box)).not.toContain('fs');
    makeOutDir(deep, '--out');
    makeOutDir(deep, '--out'); // already there
    writeOutFile(join(box, 'fs', 'z', 'f.json'), '{}\n', '--out');
    expect(readdirSync(join(box, 'fs')).sort()).toEqual(['x', 'z']);
    expect(() => writeOutFile(deep, 'x', '--out')).toThrow(OutPathError);
    expect(() => makeOutDir(join(FILE, 'q'), '--stuff')).toThrow(/^--stuff .*afile is a file, not a folder/);
    const proc = /^--out \/proc\/ccekit-x\/y: cannot create \/proc\/ccekit-x:/;
    expect(() => makeOutDir('/proc/ccekit-x/y', '--out')).toThrow(proc);
    rmSync(join(box, 'fs'), { recursive: true });
  });
});
