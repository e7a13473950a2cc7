// The ccekit CLI: main() in this process (fast) for most cases, and as a user runs it, a child process of
// `node --import tsx cli/main.ts`, for the usage text and one emit (the bad-input table is test/bad-input-cli.test.ts).
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, mainCaptured, spawnCli } from './support/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'ccekit-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

type Result = CliResult;

/** The CLI as a user runs it, a child process of `node --import tsx cli/main.ts`. */
const spawned = (...args: string[]): Promise<Result> => spawnCli(args, { limitMs: 120_000 });

let main: (argv: readonly string[]) => Promise<number>;
beforeAll(async () => {
  process.env.CCEKIT_DEBUG = '';
  ({ main } = await import('../cli/main.js'));
});

/** main() in this process with stdout and stderr captured. */
const ccekit = (...args: string[]): Promise<Result> => mainCaptured(main, args);

/** A usage or library error: exit 2, exactly one stderr line `ccekit: ...`, no stack trace. */
function expectOneLineError(r: Result, ...fragments: string[]): void {
  expect(r.code, r.stderr).toBe(2);
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^ccekit: /);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  for (const f of fragments) expect(lines[0]).toContain(f);
}

/** Relative errors of the `run` table: rows loss / lse / dE / dC, last column. */
function runErrors(stdout: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of stdout.split('\n')) {
    const m = /^(loss|lse|dE|dC)\s.*\s(\S+)$/.exec(line);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

function checkEmitted(r: Result, dir: string, ext: string): void {
  expect(r.code, r.stderr).toBe(0);
  const printed = r.stdout.trim().split('\n');
  for (const p of printed) expect(existsSync(p), p).toBe(true);
  const files = readdirSync(dir);
  expect(files).toContain('manifest.json');
  expect(printed).toHaveLength(files.length);
  const sources = files.filter((f) => f.endsWith(`.${ext}`));
  expect(sources.length).toBeGreaterThanOrEqual(6);
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { kernels: { file: string; entry: string }[] };
  expect(manifest.kernels.length).toBe(sources.length);
  for (const k of manifest.kernels) {
    expect(existsSync(join(dir, k.file)), k.file).toBe(true);
    expect(readFileSync(join(dir, k.file), 'utf8')).toContain(k.entry);
  }
}

const SOFTCAP = join(tmp, 'softcap.ts');
writeFileSync(SOFTCAP, 'export const softcap = (x: number) => 30 * Math.tanh(x / 30);\nexport function bad(x: number) { let y = x; return y; }\n');

describe('ccekit CLI', () => {
  it('prints the usage with --help, -h and no arguments (exit 0)', async () => {
    for (const [i, args] of [['--help'], []].entries()) {
      const r = i === 0 ? await spawned(...args) : await ccekit(...args);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('usage: ccekit');
      for (const c of ['emit', 'run', 'start']) expect(r.stdout).toContain(c);
    }
    for (const [c, flag] of [['emit', '--help'], ['start', '-h']] as const) {
      const r = await ccekit(c, flag);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`usage: ccekit ${c}`);
    }
  });

  it('rejects a bad flag with one line and exit 2', async () => {
    expectOneLineError(await spawned('run', '--bogus', '1'), '--bogus', '(see ccekit run --help)');
    expectOneLineError(await ccekit('emit', '--target=cuda', '--out', tmp, '--frobnicate'), '--frobnicate', '(see ccekit emit --help)');
  });

  it('rejects a bad enum, a bad number, a missing value and an unknown command', async () => {
    expectOneLineError(await ccekit('run', '--dtype', 'f64'), 'f32, f16, bf16', "'f64'");
    expectOneLineError(await ccekit('emit', '--target', 'metal', '--out', tmp), 'wgsl, cuda, triton');
    expectOneLineError(await ccekit('run', '--n', 'abc'), '--n');
    expectOneLineError(await ccekit('run', '--d'), '--d needs a value');
    expectOneLineError(await ccekit('frobnicate'), "unknown command 'frobnicate'", '(see ccekit --help)');
    expectOneLineError(await ccekit('emit', '--target', 'cuda'), '--out');
    expectOneLineError(await ccekit('tune', '--share', '16,12'), '--share', 'got 12');
    expectOneLineError(await ccekit('tune', '--share', '64,x'), '--share', "'64,x'");
  });

  it('reports library errors in one line (exit 2)', async () => {
    const rows3 = await ccekit('run', '--rows', '3', '--n', '7', '--v', '50', '--k', '5', '--d', '3');
    expectOneLineError(rows3, '--rows', 'got 3');
    expectOneLineError(await ccekit('emit', '--target', 'wgsl', '--out', join(tmp, 'never'), '--transform', `${SOFTCAP}:bad`), '--transform');
  });

  it('runs a small problem on the CPU within 1e-9 of the reference', async () => {
    const settings = [
      ['--k', '5'],
      ['--mode', 'full', '--reduction', 'none', '--dtype', 'bf16'],
      ['--k', '5', '--popularity', '--collisions', '0.3', '--ignore', '0.2', '--reduction', 'sum'],
    ];
    for (const extra of settings) {
      const r = await ccekit('run', '--device', 'cpu', '--n', '7', '--v', '50', '--d', '3', ...extra);
      expect(r.code, r.stderr + r.stdout).toBe(0);
      const e = runErrors(r.stdout);
      expect(Object.keys(e).sort()).toEqual(['dC', 'dE', 'loss', 'lse']);
      for (const [k, v] of Object.entries(e)) expect(v, k).toBeLessThan(1e-9);
    }
  });

  it('emits CUDA kernels and a manifest', async () => {
    const dir = join(tmp, 'cuda');
    checkEmitted(await spawned('emit', '--target', 'cuda', '--out', dir), dir, 'cu');
  });

  it('emits WGSL kernels and a manifest', async () => {
    const dir = join(tmp, 'wgsl');
    checkEmitted(await ccekit('emit', '--target=wgsl', '--out', dir, '--dtype', 'f16', '--rows', '2'), dir, 'wgsl');
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { kernels: { schedule: { rows: number }; options: { dtype: string } }[] };
    expect(m.kernels.every((k) => k.schedule.rows === 2 && k.options.dtype === 'f16')).toBe(true);
  });

  it('emits Triton kernels and a manifest', async () => {
    const dir = join(tmp, 'triton');
    checkEmitted(await ccekit('emit', '--target', 'triton', '--out', dir, '--variants', 'sampled', '--schedule', '{"samplesPerStep":8}'), dir, 'py');
    expect(readdirSync(dir).some((f) => f.startsWith('ce_full'))).toBe(false);
  });

  it('compiles a --transform from a TS file into the kernels and the CPU run', async () => {
    const dir = join(tmp, 'softcap');
    const r = await ccekit('emit', '--target', 'cuda', '--out', dir, '--transform', `${SOFTCAP}:softcap`);
    checkEmitted(r, dir, 'cu');
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { kernels: { file: string; options: { transform?: string } }[] };
    for (const k of m.kernels) {
      expect(k.options.transform).toContain('softcap.ts');
      expect(readFileSync(join(dir, k.file), 'utf8')).toContain('tanh');
    }
    const run = await ccekit('run', '--n', '7', '--v', '50', '--k', '5', '--d', '3', '--transform', `${SOFTCAP}:softcap`);
    expect(run.code, run.stderr).toBe(0);
    for (const v of Object.values(runErrors(run.stdout))) expect(v).toBeLessThan(1e-9);
  });
});
