// examples/sasrec/grid.py, the batch × negatives grid under a memory budget, run as a user runs it on a tiny
// synthetic file (examples/sasrec/synthetic.py) and the emitted PyTorch package, on the CPU: every run's report,
// grid.json against the reports read here, the markdown tables, the SVG's markers, a second call that reruns
// nothing, one that adds a seed, and bad flags. The train.py flags behind it (out of memory, --time-steps,
// --memory-budget-gib) and grid.py's cells on made-up reports: test/support/grid_check.py.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findTorchPython, skipTest } from './support/toolchains.js';
import { TORCH_PYTHON, emitTorchPackageDir } from './support/torch_package.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const GRID = join(ROOT, 'examples', 'sasrec', 'grid.py');
const SYNTHETIC = join(ROOT, 'examples', 'sasrec', 'synthetic.py');
const CHECK = join(ROOT, 'test', 'support', 'grid_check.py');
const PY = findTorchPython();

// A stand-in planner in the emitted package (its ccekit_torch/plan.py replaced): a prediction that moves with every
// input grid.py hands it, so that the test can compute the expected one from the run's own report.
const PLAN_METHODS = ['ce-minus', 'ce', 'cce-per-row', 'cce-shared', 'cce-in-batch', 'cce-mixed'];
const STUB_PLAN = `METHODS = ${JSON.stringify(PLAN_METHODS)}


def estimate(model, config):
    units = (model["V"] + 2 * model["D"] + 3 * model["maxLen"] + 5 * model["blocks"] + 7 * model["heads"]
             + 11 * config["batch"] + 13 * config["seqLen"] + 17 * config["K"] + 19 * (config["share"] or 0)
             + 23 * METHODS.index(config["method"]))
    return {"peakBytes": units * 2**20, "stepMs": model["fill"]}
`;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(PY!, args, { cwd: ROOT, env: { ...process.env, OMP_NUM_THREADS: '1', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

interface Report {
  status: string;
  args: { loss: string; batch_size: number; negatives: number; seed: number; negatives_mode: string;
    memory_budget_gib: number; epochs: number; hidden: number; maxlen: number; blocks: number; heads: number;
    share_rows: number | null };
  data: { items: number; train_positions: number; train_sequences: number };
  best_val: { 'ndcg@10': number; 'hr@10': number };
  test: { 'ndcg@10': number; 'hr@10': number };
  epochs: { time_s: number }[];
  step_ms: { median: number; p90: number; steps: number } | null;
  rows_per_step: { mean: number; max: number; steps: number } | null;
  memory_budget_gib: number;
  device_name: string;
}

interface Entry {
  id: string;
  method: string;
  batch: number;
  K: number;
  seed: number;
  status: string;
  share: number | null;
  'test_ndcg@10': number;
  'test_hr@10': number;
  'val_ndcg@10': number;
  'val_hr@10': number;
  epochs_run: number;
  step_ms: number | null;
  rows_per_step: number;
  card: string;
  predicted_peak_mib: number | null;
  predicted_step_ms: number | null;
}

const BATCHES = [32, 64];
const KS = [8, 32];
const TRAIN_ARGS = ['--hidden', '16', '--maxlen', '20', '--blocks', '1', '--no-progress', '--device', 'cpu',
  '--time-steps'];
// The grid (2 methods × 2 batches × 2 K, seed 1) and two extras: in-batch (no K) and shared (128 rows a group).
const EXPECTED: [string, string, string, number, number][] = [
  ...['ce-minus', 'cce-per-row'].flatMap((m) => BATCHES.flatMap((b) => KS.map(
    (k): [string, string, string, number, number] => [m, m === 'ce-minus' ? 'ce-minus' : 'cce-minus', 'per-row', b, k]))),
  ['cce-in-batch', 'cce-minus', 'in-batch', 32, 0],
  ['cce-shared', 'cce-minus', 'shared', 64, 8],
];
const idOf = (m: string, b: number, k: number, s: number) => `syn-${m}-b${b}-k${k}-s${s}`;

describe.sequential('examples/sasrec/grid.py', () => {
  let tmp = '';
  let data = '';
  let pkg = '';
  let out = '';
  const gridArgs = (...more: string[]) => [GRID, '--data', data, '--name', 'syn', '--out-dir', out, '--budget-gib', '3',
    '--batches', BATCHES.join(','), '--negatives', KS.join(','), '--losses', 'ce-minus,cce-minus', '--seeds', '1',
    '--extra', 'cce-in-batch:32:0,cce-shared:64:8', '--parallel', '2', '--epochs', '1', ...more];
  const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;
  const mtimes = () => Object.fromEntries(readdirSync(join(out, 'runs')).map((f) => [f, statSync(join(out, 'runs', f)).mtimeMs]));

  beforeAll(async () => {
    if (!PY) return;
    tmp = mkdtempSync(join(tmpdir(), 'ccekit-grid-'));
    data = join(tmp, 'syn.txt');
    out = join(tmp, 'grid');
    const r = await run([SYNTHETIC, '--items', '600', '--users', '150', '--cluster-size', '20', '--max-length', '30',
      '--seed', '2', '--out', data]);
    expect(r.code, r.stderr).toBe(0);
    pkg = emitTorchPackageDir({ dValues: [16], dtypes: ['f32'] });
    writeFileSync(join(pkg, 'ccekit_torch', 'plan.py'), STUB_PLAN);
  }, 30_000);
  afterAll(() => {
    for (const d of [tmp, pkg]) if (d) rmSync(d, { recursive: true, force: true });
  });

  it('runs every (method, batch, K, seed) and tabulates their reports', async (t) => {
    if (skipTest(t, TORCH_PYTHON, !!PY)) return;
    const r = await run([...gridArgs('--ccekit-package', pkg), '--', ...TRAIN_ARGS]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const grid = readJson<{ budget_gib: number; card: string; runs: Entry[] }>(join(out, 'grid.json'));
    expect(grid.runs.map((e) => e.id).sort()).toEqual(EXPECTED.map(([m, , , b, k]) => idOf(m, b, k, 1)).sort());
    for (const [method, loss, mode, batch, K] of EXPECTED) {
      const id = idOf(method, batch, K, 1);
      const e = grid.runs.find((x) => x.id === id)!;
      const rep = readJson<Report>(join(out, 'runs', `${id}.json`));
      expect(e.status, id).toBe('ok');
      expect(rep.status).toBe('ok');
      // The run got the flags of its method, batch, K and the budget.
      expect([rep.args.loss, rep.args.negatives_mode, rep.args.batch_size, rep.args.seed], id).toEqual([loss, mode, batch, 1]);
      if (K) expect(rep.args.negatives).toBe(K);
      expect([rep.args.memory_budget_gib, rep.memory_budget_gib, rep.args.epochs]).toEqual([3, 3, 1]);
      expect(existsSync(join(out, 'logs', `${id}.log`))).toBe(true);
      // grid.json's numbers are the report's.
      expect(e['test_ndcg@10']).toBe(rep.test['ndcg@10']);
      expect(e['test_hr@10']).toBe(rep.test['hr@10']);
      expect(e['val_ndcg@10']).toBe(rep.best_val['ndcg@10']);
      expect(e['val_hr@10']).toBe(rep.best_val['hr@10']);
      expect(e.epochs_run).toBe(rep.epochs.length);
      expect(e.step_ms).toBe(rep.step_ms!.median);
      expect(e.card).toBe(rep.device_name);
      const steps = Math.ceil(rep.data.train_sequences / batch);
      expect(e.rows_per_step).toBeCloseTo(rep.data.train_positions / steps, 9);
      // Each epoch visits every training position once: the loss rows of its steps add up to them.
      const rows = rep.rows_per_step!;
      expect([rows.steps, rows.mean * rows.steps]).toEqual([steps * rep.epochs.length,
        rep.data.train_positions * rep.epochs.length]);
      expect(rows.max).toBeGreaterThanOrEqual(rows.mean);
      // The stand-in planner's answer for this run's model and configuration.
      const share = method === 'cce-shared' ? 128 : 0;
      const units = rep.data.items + 2 * 16 + 3 * 20 + 5 * 1 + 7 * 1 + 11 * batch + 13 * 20 + 17 * K + 19 * share +
        23 * PLAN_METHODS.indexOf(method);
      expect(e.predicted_peak_mib, id).toBe(units);
      expect(e.predicted_step_ms).toBeCloseTo(rep.data.train_positions / (rep.data.train_sequences * 20), 12);
    }

    // grid.md: per method a row per batch and a column per K, cells = NDCG / peak; every run in the second table.
    const md = readFileSync(join(out, 'grid.md'), 'utf8');
    expect(md.split('\n')[0]).toBe(`# SASRec grid syn: ${grid.card}, budget 3 GiB`);
    for (const m of ['ce-minus', 'cce-per-row']) {
      const section = md.split(`## ${m} (`)[1]!.split('\n## ')[0]!;
      const rows = section.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| ---'))
        .map((l) => l.split('|').slice(1, -1).map((c) => c.trim()));
      expect(rows[0]).toEqual(['batch \\ K', ...KS.map(String)]);
      expect(rows.slice(1).map((row) => row[0])).toEqual(BATCHES.map(String));
      for (const [i, b] of BATCHES.entries())
        for (const [j, k] of KS.entries()) {
          const rep = readJson<Report>(join(out, 'runs', `${idOf(m, b, k, 1)}.json`));
          expect(rows[i + 1]![j + 1]).toBe(`${rep.test['ndcg@10'].toFixed(4)} / n/a GiB`);
        }
    }
    const every = md.split('## Every run')[1]!.split('\n').filter((l) => l.startsWith('| syn-'));
    expect(every.length).toBe(EXPECTED.length);

    // grid.svg parses as XML and has one filled marker per run, each titled with its run.
    const s = spawnSync(PY!, [CHECK, 'svg', join(out, 'grid.svg')], { encoding: 'utf8' });
    expect(s.status, s.stderr).toBe(0);
    const svg = JSON.parse(s.stdout) as { root: string; markers: { status: string; title: string }[] };
    expect(svg.root).toBe('{http://www.w3.org/2000/svg}svg');
    expect(svg.markers.map((m) => m.status)).toEqual(EXPECTED.map(() => 'ok'));
    expect(svg.markers.map((m) => m.title.split(':')[0]).sort()).toEqual(grid.runs.map((e) => e.id).sort());
  }, 60_000);

  it('reruns nothing with --report-only, and only the new runs when seeds are added', async (t) => {
    if (skipTest(t, TORCH_PYTHON, !!PY)) return;
    const before = mtimes();
    const logs = readdirSync(join(out, 'logs')).length;
    // No planner in this package folder: predictions are null, the rest is as before.
    const r = await run([...gridArgs('--ccekit-package', join(tmp, 'no-package'), '--report-only'), '--', ...TRAIN_ARGS]);
    expect(r.code, r.stderr).toBe(0);
    expect(mtimes()).toEqual(before);
    const grid = readJson<{ runs: Entry[] }>(join(out, 'grid.json'));
    expect(grid.runs.every((e) => e.status === 'ok' && e.predicted_peak_mib === null)).toBe(true);

    const again = await run([...gridArgs('--ccekit-package', pkg, '--extra-seeds', '1,2'), '--', ...TRAIN_ARGS]);
    expect(again.code, again.stderr).toBe(0);
    const after = mtimes();
    for (const [f, m] of Object.entries(before)) expect(after[f], f).toBe(m);
    expect(Object.keys(after).sort()).toEqual([...Object.keys(before), `${idOf('cce-in-batch', 32, 0, 2)}.json`,
      `${idOf('cce-shared', 64, 8, 2)}.json`].sort());
    expect(readdirSync(join(out, 'logs')).length).toBe(logs + 2);
    const runs = readJson<{ runs: Entry[] }>(join(out, 'grid.json')).runs;
    expect(runs.length).toBe(EXPECTED.length + 2);
    expect(runs.filter((e) => e.seed === 2).every((e) => e.status === 'ok')).toBe(true);
  }, 40_000);

  it('refuses bad flags with one error naming the flag', async (t) => {
    if (skipTest(t, TORCH_PYTHON, !!PY)) return;
    const base = [GRID, '--data', 'x.txt', '--name', 'n', '--out-dir', join(tmpdir(), 'ccekit-grid-never')];
    const cases: [string[], string][] = [
      [['--losses', 'ce-minus', '--batches', '32', '--negatives', '8', '--parallel', '0'], '--parallel'],
      [['--losses', 'ce-minus,nope', '--batches', '32', '--negatives', '8'], '--losses'],
      [['--extra', 'nope:32:8'], '--extra'],
      [['--extra', 'ce-minus:32:0'], '--extra'],
      [['--losses', 'ce-minus', '--batches', '', '--negatives', '8'], '--batches'],
      [['--losses', 'ce-minus', '--batches', '32', '--negatives', '0'], '--negatives'],
      [['--losses', 'ce-minus', '--batches', '32', '--negatives', '8', '--seeds', ','], '--seeds'],
      [['--losses', 'ce-minus', '--batches', '32', '--negatives', '8', '--', '--batch-size', '4'], '--batch-size'],
    ];
    const results = await Promise.all(cases.map(([args]) => run([...base, ...args])));
    for (const [i, [args, flag]] of cases.entries()) {
      const r = results[i]!;
      const lines = r.stderr.trim().split('\n');
      expect(r.code, args.join(' ')).toBe(2);
      expect(lines.length, r.stderr).toBe(1);
      expect(lines[0]).toMatch(/^grid\.py: error: /);
      expect(lines[0], args.join(' ')).toContain(flag);
    }
    expect(existsSync(join(tmpdir(), 'ccekit-grid-never'))).toBe(false);
  }, 30_000);

  it("train.py's grid flags and grid.py's cells (test/support/grid_check.py)", (t) => {
    if (skipTest(t, TORCH_PYTHON, !!PY)) return;
    const r = spawnSync(PY!, [CHECK], { cwd: ROOT, encoding: 'utf8', timeout: 50_000, env: { ...process.env, OMP_NUM_THREADS: '1' } });
    expect(r.stdout, r.stderr).not.toContain('FAIL');
    expect((r.stdout.match(/^ok {3}/gm) ?? []).length, r.stdout + r.stderr).toBe(4);
    expect(r.status).toBe(0);
  }, 60_000);
});
