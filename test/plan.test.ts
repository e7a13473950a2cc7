// The training-step planner (runtime/costmodel.ts + runtime/memplan.ts, `ccekit plan`, ccekit_torch/plan.py): the
// expression language, the memory and time arithmetic on a small model by hand, budgets that fit nothing or are not
// positive, the Pareto front and recommendation, the calibration fit (coefficients recovered from runs made with
// known ones, and held-out runs predicted), the Python package's planner against the CLI's on the same data, and the
// CLI's output, plot, --check and errors.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findTorchPython, skipTest, writeFiles } from './support/toolchains.js';
import { TORCH_PYTHON, emitTorchPackageDir } from './support/torch_package.js';
import { emitTorchPackage } from '../packages/torch/package.js';
import { COST_MODEL, DEFAULT_COEFS, coefNames, evalExpr, parseExpr } from '../runtime/costmodel.js';
import {
  type Calibration, DEFAULT_CALIBRATION, type MeasuredRun, type PlanConfig, PLAN_METHODS, checkCalibration,
  compareRuns, estimate, fitCalibration, paramCount, planGrid,
} from '../runtime/memplan.js';

const M = { V: 1000, D: 8, maxLen: 10, blocks: 1, heads: 2 };
const k = DEFAULT_COEFS;

describe('the cost model', () => {
  it('parses and evaluates its expression language', () => {
    const env = { a: 3, b: 5, D: 7 };
    expect(evalExpr(parseExpr('a*b + 2*D^2'), env)).toBe(15 + 98);
    expect(evalExpr(parseExpr('(a + b)*(D + 1)^2 + 1.5e1'), env)).toBe(8 * 64 + 15);
    expect(() => parseExpr('a*')).toThrow(/unexpected end/);
    expect(() => parseExpr('a^b')).toThrow(/integer exponent/);
    expect(() => parseExpr('a - b')).toThrow(/unexpected '-'/);
    expect(() => evalExpr(parseExpr('a*q'), env)).toThrow(/unknown name 'q'/);
    for (const name of coefNames()) expect(DEFAULT_COEFS[name], name).toBeGreaterThanOrEqual(0);
  });

  it('counts parameters, activations, loss state and time as documented', () => {
    const P = 1002 * 8 + 10 * 8 + (6 * 64 + 80);
    expect(paramCount(M)).toBe(P);
    const e = estimate(M, { method: 'ce-minus', batch: 4, seqLen: 10, K: 7 });
    const act = k['mem.act']! * 40 * 8 * 2 + k['mem.attn']! * 4 * 2 * 100;
    const loss = k['mem.ce-minus.pairs']! * 40 * 7 * 8 + k['mem.ce-minus.cands']! * 40 * 7 +
      k['mem.ce-minus.rows']! * 40 * 8;
    const held = k['mem.ce-minus.held.cands']! * 40 * 7 + k['mem.ce-minus.held.rows']! * 40 * 8 +
      k['mem.ce-minus.held.table']! * 1000 * 8;
    expect(e.parts.params).toBe(12 * P);
    expect(e.parts.grads).toBe(4 * P);
    expect(e.parts.activations).toBeCloseTo(act, 6);
    expect(e.parts.loss).toBeCloseTo(loss, 6);
    expect(e.parts.table).toBeCloseTo(k['mem.table']! * 1000 * 8, 6);
    expect(e.parts.optimizer).toBeCloseTo(k['mem.opt']! * P, 6);
    const phases = [act + loss, 4 * P + act + k['mem.table']! * 8000 + held, 4 * P + k['mem.opt']! * P];
    expect(e.peakBytes).toBeCloseTo(12 * P + Math.max(...phases), 6);
    // ccekit holds fp32 dE while the gradients form; a large batch makes that phase the peak.
    const c = estimate(M, { method: 'cce-per-row', batch: 400, seqLen: 10, K: 7 });
    expect(c.peakBytes).toBeCloseTo(12 * P + 4 * P + c.parts.activations + c.parts.table +
      k['mem.cce-per-row.held.rows']! * 4000 * 8 + k['mem.cce-per-row.held.table']! * 8000, 6);
    const modelMs = k['ms.model']! * 40 * (6 * 64 + 10 * 8 + 8) + k['ms.params']! * P;
    expect(e.parts.modelMs).toBeCloseTo(modelMs, 12);
    expect(e.stepMs).toBeCloseTo(modelMs + k['ms.ce-minus.pairs']! * 40 * 7 * 8 + k['ms.ce-minus.table']! * 8000, 12);
    const full = estimate(M, { method: 'ce', batch: 4, seqLen: 10, K: 0 });
    expect(full.candidates).toBe(1000);
    expect(full.parts.loss).toBeCloseTo(k['mem.ce.pairs']! * 40 * 1000 * 8 + k['mem.ce.cands']! * 40 * 1000 +
      k['mem.ce.rows']! * 40 * 8, 6);
    expect(estimate(M, { method: 'cce-mixed', batch: 4, seqLen: 10, K: 7 }).candidates).toBe(47);
    expect(estimate({ ...M, fill: 0.25 }, { method: 'cce-in-batch', batch: 4, seqLen: 10, K: 0 }).rows).toBe(10);
  });

  it('refuses bad budgets, requests and calibrations, naming the argument', () => {
    const grid: PlanConfig[] = [{ method: 'cce-per-row', batch: 4, seqLen: 10, K: 7 }];
    expect(() => planGrid(M, grid, 0)).toThrow(/^budget: must be a positive/);
    expect(() => planGrid(M, grid, 100)).toThrow(/^budget: 0\.00 GiB fits none of the 1 configurations/);
    expect(() => estimate(M, { method: 'cce-per-row', batch: 4, seqLen: 11, K: 7 })).toThrow(/^seqLen: 11 exceeds/);
    expect(() => estimate({ ...M, V: 1 }, grid[0]!)).toThrow(/^V: must be an integer >= 2/);
    expect(() => estimate(M, { method: 'bogus' as 'ce', batch: 4, seqLen: 10, K: 7 })).toThrow(/^method: 'bogus'/);
    expect(() => checkCalibration({ coefs: { ...DEFAULT_COEFS, 'mem.act': -1 } })).toThrow(/mem\.act must be/);
    expect(() => checkCalibration({ ms: {} })).toThrow(/no coefs object/);
    const { 'mem.table': _, ...old } = DEFAULT_COEFS;
    expect(() => checkCalibration({ coefs: old })).toThrow(/mem\.table is missing .*ccekit plan --calibrate/);
  });

  it('keeps the non-dominated fitting configurations; recommends the most candidates near the best time a row', () => {
    const grid: PlanConfig[] = [2, 4, 8].flatMap((batch) => [16, 64].flatMap((K) =>
      (['ce-minus', 'cce-per-row'] as const).map((method) => ({ method, batch, seqLen: 10, K }))));
    const p = planGrid(M, grid, 2 ** 30);
    expect(p.fitting.length).toBe(12);
    const perRow = (c: PlanConfig) => estimate(M, c).stepMs / (c.batch * c.seqLen);
    // Every fitting configuration not on the front is dominated by one on it, and none on it by any.
    const dom = (b: PlanConfig, a: PlanConfig) => perRow(b) <= perRow(a) && b.K >= a.K && b.batch >= a.batch &&
      (perRow(b) < perRow(a) || b.K > a.K || b.batch > a.batch);
    const front = p.front.map((e) => e.config);
    for (const c of grid) expect(front.includes(c), JSON.stringify(c)).toBe(!grid.some((b) => b !== c && dom(b, c)));
    const near = grid.filter((c) => perRow(c) <= 1.5 * Math.min(...grid.map(perRow)));
    const most = Math.max(...near.map((c) => c.batch * c.seqLen * c.K));
    expect(p.recommended.config.batch * p.recommended.config.seqLen * p.recommended.config.K).toBe(most);
  });

  it('recovers known coefficients from runs made with them, and predicts held-out runs', () => {
    const big = { ...M, V: 100_000, D: 64, maxLen: 50, blocks: 2 };
    const truth: Calibration = { device: 'truth', source: 'measured', coefs: { ...DEFAULT_COEFS } };
    let seed = 7;
    const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    for (const name of coefNames()) truth.coefs[name] = (0.2 + 3 * rnd()) * (DEFAULT_COEFS[name] || 1e-9);
    const run = (config: PlanConfig): MeasuredRun => {
      const e = estimate(big, config, truth);
      const alone = estimate(big, config, { ...truth, coefs: { ...truth.coefs, ...Object.fromEntries(coefNames()
        .filter((n) => n.startsWith(`mem.${config.method}.`)).map((n) => [n, 0])) } });
      return { config, stepMs: e.stepMs, peakBytes: e.peakBytes, fbPeakBytes: e.parts.params +
        Math.max(e.phases.loss, e.phases.grads), optPeakBytes: e.parts.params + e.phases.optimizer,
        modelMs: e.parts.modelMs, modelFbPeakBytes: alone.parts.params + alone.phases.grads };
    };
    const sizes: [number, number, number][] = [[8, 50, 64], [32, 20, 512], [24, 30, 128]];
    const fitRuns = PLAN_METHODS.flatMap((method) => sizes.map(([batch, seqLen, K]) => run({ method,
      batch, seqLen, K: method === 'ce' || method === 'cce-in-batch' ? 0 : K })));
    const fitted = fitCalibration(big, fitRuns, 'test card');
    expect(fitted.source).toBe('measured');
    const held = PLAN_METHODS.map((method) => run({ method, batch: 16, seqLen: 40, K: method === 'ce' ? 0 : 2048 }));
    for (const r of compareRuns(big, [...fitRuns, ...held], fitted)) {
      expect(Math.abs(r.msError!), JSON.stringify(r.config)).toBeLessThan(1e-6);
      expect(Math.abs(r.bytesError!), JSON.stringify(r.config)).toBeLessThan(1e-6);
    }
    // One run a method cannot tell a method's two terms apart: their base values are scaled by one factor.
    const base: Calibration = { device: 'base', source: 'default', coefs: Object.fromEntries(
      Object.entries(truth.coefs).map(([n, v]) => [n, 2 * v])) };
    const one = fitCalibration(big, [run({ method: 'cce-shared', batch: 8, seqLen: 50, K: 64 })], 'one run', base);
    expect(one.coefs['ms.cce-shared.pairs']! / base.coefs['ms.cce-shared.pairs']!).toBeCloseTo(0.5, 9);
    expect(one.coefs['ms.cce-shared.table']! / base.coefs['ms.cce-shared.table']!).toBeCloseTo(0.5, 9);
    expect(one.coefs['ms.cce-per-row.pairs']).toBe(base.coefs['ms.cce-per-row.pairs']);
  });

  it('ccekit_torch.plan evaluates the same model as ccekit plan (the emitted plan_model.json)', (t) => {
    const py = findTorchPython();
    if (skipTest(t, TORCH_PYTHON, !!py)) return;
    // Only the planner's two files: a namespace package that needs no torch.
    const dir = mkdtempSync(join(tmpdir(), 'ccekit-plan-py-'));
    const files = emitTorchPackage({ dValues: [64], dtypes: ['f32'] });
    writeFiles(dir, new Map([...files].filter(([f]) => /ccekit_torch\/plan(\.py|_model\.json)$/.test(f))));
    const cal: Calibration = { device: 'x', source: 'measured', coefs: Object.fromEntries(coefNames().map((n, i) =>
      [n, (DEFAULT_COEFS[n] || 1e-9) * (1 + i / 7)])) };
    const model = { V: 123_457, D: 96, maxLen: 150, blocks: 3, heads: 2, fill: 0.61 };
    const grid: PlanConfig[] = PLAN_METHODS.flatMap((method) => [[7, 150, 33], [64, 90, 1000], [300, 150, 4096]].map(
      ([batch, seqLen, K]) => ({ method, batch: batch!, seqLen: seqLen!, K: method === 'ce' ? 0 : K!, share: 64 })));
    const budget = 3 * 2 ** 30;
    writeFileSync(join(dir, 'in.json'), JSON.stringify({ cal, model, grid, budget }));
    const script = 'import json, sys; sys.path.insert(0, sys.argv[1]); from ccekit_torch import plan\n' +
      'j = json.load(open(sys.argv[1] + "/in.json"))\n' +
      'p = plan.plan(j["budget"], j["model"], j["grid"], j["cal"])\n' +
      'print(json.dumps({"all": [[e["peakBytes"], e["stepMs"], e["rows"], e["candidates"]] for e in p["all"]],\n' +
      '  "front": [p["all"].index(e) for e in p["front"]], "rec": p["all"].index(p["recommended"])}))\n' +
      'try: plan.estimate(j["model"], dict(j["grid"][0], seqLen=151), j["cal"])\n' +
      'except plan.PlanError as e: print(e)\n';
    const r = spawnSync(py!, ['-c', script, dir], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const [line, err] = r.stdout.trim().split('\n');
    const got = JSON.parse(line!) as { all: number[][]; front: number[]; rec: number };
    const want = planGrid(model, grid, budget, cal);
    expect(got.all.length).toBe(want.all.length);
    want.all.forEach((e, i) => {
      expect(got.all[i]![0]! / e.peakBytes - 1).toBeCloseTo(0, 12);
      expect(got.all[i]![1]! / e.stepMs - 1).toBeCloseTo(0, 12);
      expect(got.all[i]!.slice(2)).toEqual([e.rows, e.candidates]);
    });
    expect(got.front).toEqual(want.front.map((e) => want.all.indexOf(e)));
    expect(got.rec).toBe(want.all.indexOf(want.recommended));
    expect(want.front.length).toBeGreaterThan(1);
    expect(err).toBe('seqLen: 151 exceeds maxLen 150');
  }, 60_000);

  it('ccekit plan prints the front and a recommendation, plots, checks runs, and names bad flags', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ccekit-plan-'));
    const env = { ...process.env, CCEKIT_CACHE: dir };
    const cli = (...a: string[]) => spawnSync('npx', ['tsx', 'cli/main.ts', 'plan', ...a], { encoding: 'utf8', env });
    const r = cli('--budget', '40', '--batch', '64,256', '--negatives', '256,2048', '--svg', join(dir, 'p.svg'));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/cost model defaults \(not measured\)/);
    expect(r.stdout).toMatch(/^recommended: cce-/m);
    expect(readFileSync(join(dir, 'p.svg'), 'utf8')).toMatch(/^<svg[\s\S]*<circle[\s\S]*<\/svg>\n$/);
    expect(cli('--budget', '0.5').stderr).toMatch(/^ccekit: budget: 0\.50 GiB fits none/);
    expect(cli('--budget', '40', '--methods', 'bogus').stderr).toMatch(/--methods: 'bogus' is not one of/);
    writeFileSync(join(dir, 'bad.json'), '{"ms": {}}');
    expect(cli('--budget', '40', '--calibration', join(dir, 'bad.json')).stderr).toMatch(/no coefs object/);
    // --check: runs the default model predicts exactly, and one 50 % slower and 20 % larger.
    const m = { V: 10_000, D: 32, maxLen: 20, blocks: 1, heads: 1 };
    const configs: PlanConfig[] = [{ method: 'cce-per-row', batch: 16, seqLen: 20, K: 64 },
      { method: 'ce-minus', batch: 8, seqLen: 20, K: 128 }];
    const runs = configs.map((config, i) => {
      const e = estimate(m, config, DEFAULT_CALIBRATION);
      return { config, stepMs: e.stepMs * (i ? 1.5 : 1), peakBytes: e.peakBytes * (i ? 1.2 : 1) };
    });
    // A run with its own model (another catalog) and no comparable time: memory only.
    const own = { ...m, V: 50_000, fill: 0.5 };
    const third = { config: configs[0]!, model: own, stepMs: null,
      peakBytes: estimate(own, configs[0]!, DEFAULT_CALIBRATION).peakBytes };
    writeFileSync(join(dir, 'runs.json'), JSON.stringify({ device: 'card X', model: m, runs: [...runs, third] }));
    const c = cli('--check', join(dir, 'runs.json'), '--md', join(dir, 'c.md'), '--json', join(dir, 'c.json'));
    expect(c.status, c.stderr).toBe(0);
    expect(c.stdout).toMatch(/2 of 3 within 10 % of the measured peak memory, 1 of 2 within 20 % of the measured/);
    expect(readFileSync(join(dir, 'c.md'), 'utf8')).toMatch(/card X[\s\S]*\| ce-minus batch 8 length 20 K 128 \|.*-33\.3%/);
    expect(JSON.parse(readFileSync(join(dir, 'c.json'), 'utf8')).comparison).toHaveLength(3);
    expect(cli('--budget', '40', '--md', join(dir, 'x.md')).stderr).toMatch(/--md goes with --check/);
  }, 60_000);

  it('calibrates from measured SASRec steps (examples/sasrec/calibrate.py on the CPU) and plans with it', (t) => {
    const py = findTorchPython();
    if (skipTest(t, TORCH_PYTHON, !!py)) return;
    const dir = mkdtempSync(join(tmpdir(), 'ccekit-calib-'));
    const runs = join(dir, 'runs.json');
    const c = spawnSync(py!, ['examples/sasrec/calibrate.py', '--v', '2000', '--d', '16', '--max-len', '20', '--blocks',
      '1', '--configs', 'cce-per-row:8:20:32,ce-minus:8:20:32', '--ccekit-package', emitTorchPackageDir(), '--device',
      'cpu', '--steps', '2', '--out', runs], { encoding: 'utf8', timeout: 120_000, env: { ...process.env,
      OMP_NUM_THREADS: '1' } });
    expect(c.status, c.stderr).toBe(0);
    const measured = JSON.parse(readFileSync(runs, 'utf8'));
    expect(measured.runs.map((r: MeasuredRun) => r.config.method)).toEqual(['cce-per-row', 'ce-minus']);
    for (const r of measured.runs as MeasuredRun[]) {
      expect(r.stepMs).toBeGreaterThan(0);
      expect(r.modelMs).toBeGreaterThan(0);
      expect(r.peakBytes).toBeNull();
      // The timed steps are recorded after a warm-up of two steps or more; stepMs is their median.
      const st = (r as MeasuredRun & { steps: { warmupMs: number[]; stepsMs: number[] } }).steps;
      expect(st.warmupMs.length).toBeGreaterThanOrEqual(2);
      expect(st.stepsMs).toHaveLength(2);
      expect(r.stepMs).toBeCloseTo((st.stepsMs[0] + st.stepsMs[1]) / 2, 2);
    }
    const env = { ...process.env, CCEKIT_CACHE: dir };
    const cli = (...a: string[]) => spawnSync('npx', ['tsx', 'cli/main.ts', 'plan', ...a], { encoding: 'utf8', env });
    const fit = cli('--calibrate', runs);
    expect(fit.status, fit.stderr).toBe(0);
    expect(fit.stdout).toMatch(/fitted to 2 runs on cpu/);
    const cal = checkCalibration(JSON.parse(readFileSync(join(dir, 'plan-calibration.json'), 'utf8')));
    expect(cal.source).toBe('measured');
    expect(cal.coefs['ms.model']).not.toBe(DEFAULT_COEFS['ms.model']);
    const plan = cli('--budget', '1', '--v', '2000', '--d', '16', '--max-len', '20', '--blocks', '1');
    expect(plan.stdout).toMatch(/cost model calibrated on cpu/);
    expect(Object.keys(COST_MODEL.time.loss)).toEqual([...PLAN_METHODS]);
  }, 150_000);
});
