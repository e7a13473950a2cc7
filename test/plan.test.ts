// The training-step planner (runtime/memplan.ts, `ccekit plan`): its memory arithmetic on a small model by hand,
// budgets that fit nothing or are not positive, the Pareto front and recommendation, the calibration fit (runs
// made from a known calibration are predicted back), and the CLI's output, plot and errors.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findTorchPython, skipTest } from './support/toolchains.js';
import { TORCH_PYTHON, emitTorchPackageDir } from './support/torch_package.js';
import {
  type Calibration, DEFAULT_CALIBRATION, type PlanConfig, estimate, fitCalibration, paramCount, planGrid,
} from '../runtime/memplan.js';

const M = { V: 1000, D: 8, maxLen: 10, blocks: 1, heads: 2 };

describe('training-step planner', () => {
  it('counts parameters, activations and the loss state as documented', () => {
    const P = 1002 * 8 + 10 * 8 + (6 * 64 + 80);
    expect(paramCount(M)).toBe(P);
    const e = estimate(M, { method: 'ce-minus', batch: 4, seqLen: 10, K: 7 });
    const act = 1 * (40 * 8 * 40 + 4 * 2 * 100 * 6) + 40 * 8 * 40;
    expect(e.parts.params).toBe(16 * P);
    expect(e.parts.activations).toBe(act);
    expect(e.parts.loss).toBe(40 * 7 * (8 * 10 + 16));
    expect(e.peakBytes).toBe(16 * P + act + 40 * 7 * 96);
    const full = estimate(M, { method: 'ce', batch: 4, seqLen: 10, K: 0 });
    expect(full.parts.loss).toBe(40 * 1000 * 10);
    expect(full.candidates).toBe(1000);
    expect(estimate(M, { method: 'cce-mixed', batch: 4, seqLen: 10, K: 7 }).candidates).toBe(47);
  });

  it('refuses bad budgets and requests, naming the argument', () => {
    const grid: PlanConfig[] = [{ method: 'cce-per-row', batch: 4, seqLen: 10, K: 7 }];
    expect(() => planGrid(M, grid, 0)).toThrow(/^budget: must be a positive/);
    expect(() => planGrid(M, grid, 100)).toThrow(/^budget: 0\.00 GiB fits none of the 1 configurations/);
    expect(() => estimate(M, { method: 'cce-per-row', batch: 4, seqLen: 11, K: 7 })).toThrow(/^seqLen: 11 exceeds/);
    expect(() => estimate({ ...M, V: 1 }, grid[0]!)).toThrow(/^V: must be an integer >= 2/);
  });

  it('keeps the non-dominated fitting configurations; recommends the most candidates near the best time a row', () => {
    const grid: PlanConfig[] = [2, 4, 8].flatMap((batch) => [16, 64].flatMap((K) =>
      (['ce-minus', 'cce-per-row'] as const).map((method) => ({ method, batch, seqLen: 10, K }))));
    const p = planGrid(M, grid, 2 ** 30);
    expect(p.fitting.length).toBe(12);
    // PyTorch CE- is slower a row; a larger batch is as fast a row and more rows; K = 64 costs 3.2x a row.
    expect(p.front.map((e) => [e.config.method, e.config.batch, e.config.K])).toEqual([['cce-per-row', 8, 16],
      ['cce-per-row', 8, 64]]);
    expect(p.recommended.config).toEqual({ method: 'cce-per-row', batch: 8, seqLen: 10, K: 16 });
  });

  it('fits a calibration that predicts the runs it was fitted on', () => {
    const truth: Calibration = JSON.parse(JSON.stringify(DEFAULT_CALIBRATION));
    truth.ms.loss['cce-per-row'] *= 3.7;
    truth.bytes.loss['cce-per-row'] *= 2.5;
    truth.ms.loss['ce-minus'] *= 0.4;
    const configs: PlanConfig[] = [{ method: 'cce-per-row', batch: 64, seqLen: 10, K: 512 },
      { method: 'ce-minus', batch: 32, seqLen: 10, K: 256 }];
    const big = { ...M, V: 100_000, D: 64 };
    const runs = configs.map((config) => {
      const e = estimate(big, config, truth);
      return { config, stepMs: e.stepMs, peakBytes: e.peakBytes };
    });
    const fitted = fitCalibration(big, runs, 'test card');
    expect(fitted.source).toBe('measured');
    for (const r of runs) {
      const e = estimate(big, r.config, fitted);
      expect(Math.abs(e.stepMs / r.stepMs - 1)).toBeLessThan(1e-9);
      expect(Math.abs(e.peakBytes / r.peakBytes - 1)).toBeLessThan(1e-9);
    }
  });

  it('ccekit plan prints the front and a recommendation, plots, and names bad flags', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ccekit-plan-'));
    const cli = (...a: string[]) => spawnSync('npx', ['tsx', 'cli/main.ts', 'plan', ...a], { encoding: 'utf8' });
    const r = cli('--budget', '40', '--batch', '64,256', '--negatives', '256,2048', '--svg', join(dir, 'p.svg'));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/cost model defaults \(not measured\)/);
    expect(r.stdout).toMatch(/^recommended: cce-/m);
    expect(readFileSync(join(dir, 'p.svg'), 'utf8')).toMatch(/^<svg[\s\S]*<circle[\s\S]*<\/svg>\n$/);
    expect(cli('--budget', '0.5').stderr).toMatch(/^ccekit: budget: 0\.50 GiB fits none/);
    expect(cli('--budget', '40', '--methods', 'bogus').stderr).toMatch(/--methods: 'bogus' is not one of/);
    writeFileSync(join(dir, 'bad.json'), '{"ms": {}}');
    expect(cli('--budget', '40', '--calibration', join(dir, 'bad.json')).stderr).toMatch(/no positive coefficients/);
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
    const env = { ...process.env, CCEKIT_CACHE: dir };
    const cli = (...a: string[]) => spawnSync('npx', ['tsx', 'cli/main.ts', 'plan', ...a], { encoding: 'utf8', env });
    const fit = cli('--calibrate', runs);
    expect(fit.status, fit.stderr).toBe(0);
    expect(fit.stdout).toMatch(/fitted to 2 runs on cpu/);
    const cal = JSON.parse(readFileSync(join(dir, 'plan-calibration.json'), 'utf8')) as Calibration;
    expect(cal.source).toBe('measured');
    const plan = cli('--budget', '1', '--v', '2000', '--d', '16', '--max-len', '20', '--blocks', '1');
    expect(plan.stdout).toMatch(/cost model calibrated on cpu/);
  }, 150_000);
});
