// `ccekit plan`: which (method, batch size, sequence length, negatives) fits a memory budget for a SASRec model, and
// how fast a step is, from runtime/memplan.ts's cost model (a calibration file sets its coefficients; without one
// the defaults are first-principles figures, labelled so). Prints the fitting configurations' Pareto front
// (memory, time) and a recommendation; --svg plots every configuration.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { TuningDb } from '../runtime/autotune/db.js';
import {
  type Calibration, DEFAULT_CALIBRATION, type MeasuredRun, PLAN_METHODS, type PlanConfig, type PlanEstimate,
  type PlanMethod, type PlanModel, checkCalibration, compareRuns, describe, fitCalibration, gib, planGrid,
} from '../runtime/memplan.js';
import { checkOutFile } from '../runtime/fsout.js';
import { type FlagTable, UsageError, intList, parseFlags, table, usage } from './args.js';
import { out } from './common.js';

const PLAN_FLAGS = {
  budget: { kind: 'num', min: 0.001, help: 'memory budget in GiB (required unless --calibrate or --check)' },
  calibrate: { kind: 'str', metavar: 'RUNS', help: 'fit the cost model to examples/sasrec/calibrate.py runs' },
  check: { kind: 'str', metavar: 'RUNS', help: 'compare the calibrated predictions with measured runs (held out)' },
  md: { kind: 'str', metavar: 'FILE', help: 'with --check: the comparison as a markdown table' },
  v: { kind: 'int', min: 2, max: 2 ** 31 - 1, default: 1_000_000, help: 'catalog size V' },
  d: { kind: 'int', min: 1, max: 65536, default: 256, help: 'hidden size D' },
  'max-len': { kind: 'int', min: 1, max: 100_000, default: 200, help: 'maximum sequence length' },
  blocks: { kind: 'int', min: 0, max: 1000, default: 2, help: 'transformer blocks' },
  heads: { kind: 'int', min: 1, max: 1024, default: 1, help: 'attention heads' },
  fill: { kind: 'num', min: 0.001, max: 1, default: 1, help: 'share of positions that carry a loss (non-padding)' },
  batch: { kind: 'str', default: '64,128,256,512,1024', metavar: 'B[,B...]', help: 'batch sizes' },
  'seq-len': { kind: 'str', default: '', metavar: 'L[,L...]', help: 'sequence lengths (default: --max-len)' },
  negatives: { kind: 'str', default: '128,256,512,1024,2048,4096,8192,16384', metavar: 'K[,K...]',
    help: 'negatives a row' },
  methods: { kind: 'str', default: PLAN_METHODS.join(','), help: 'methods to plan' },
  share: { kind: 'int', min: 1, max: 1024, default: 128, help: 'rows a group of shared draws (cce-shared, mixed)' },
  calibration: {
    kind: 'str', metavar: 'FILE',
    help: 'calibration JSON (default plan-calibration.json beside the tuning DB, when there)',
  },
  svg: { kind: 'str', metavar: 'FILE', help: 'plot of peak memory vs step time of every configuration' },
  json: { kind: 'str', metavar: 'FILE', help: 'every estimate as JSON' },
} as const satisfies FlagTable;

export const PLAN_HELP = usage(
  'ccekit plan --budget GIB [--v 1000000 --d 256 --max-len 200 --blocks 2] [--batch ...] [--negatives ...]',
  'Predict peak memory and step time of a SASRec training step (model + loss + Adam) for each method, batch size,\n' +
    'sequence length and number of negatives; print the fitting ones\' Pareto front (time a row, candidates a row,\n' +
    'rows a step) and a recommendation (the most scored candidates a step within 1.5x of the best time a row).\n' +
    'Without --calibration the cost model uses first-principles defaults, not measurements: the output says so.',
  PLAN_FLAGS,
);

/** The calibration beside the tuning DB ($CCEKIT_CACHE or ~/.cache/ccekit). */
export const defaultCalibrationPath = (): string => join(dirname(TuningDb.defaultPath()), 'plan-calibration.json');

function calibrationFrom(given: string | undefined): Calibration {
  const path = given ?? (existsSync(defaultCalibrationPath()) ? defaultCalibrationPath() : undefined);
  if (path === undefined) return DEFAULT_CALIBRATION;
  try {
    return checkCalibration(JSON.parse(readFileSync(path, 'utf8')));
  } catch (e) {
    throw new UsageError(`--calibration ${path}: ${(e as Error).message}`, 'plan');
  }
}

function svg(all: PlanEstimate[], front: PlanEstimate[], budget: number): string {
  const W = 720, H = 440, pad = 60;
  // Both axes log10: step ms and peak GiB span decades (ccekit's flat peaks, PyTorch CE-'s growing ones).
  const xs = all.map((e) => Math.log10(e.stepMs)), ys = all.map((e) => Math.log10(e.peakBytes / 2 ** 30));
  const yb = Math.log10(budget / 2 ** 30);
  const [x0, x1] = [Math.floor(Math.min(...xs)), Math.ceil(Math.max(...xs) + 1e-9)];
  const [y0, y1] = [Math.floor(Math.min(yb, ...ys)), Math.ceil(Math.max(yb, ...ys) + 1e-9)];
  const px = (x: number) => pad + ((x - x0) / Math.max(1, x1 - x0)) * (W - 2 * pad);
  const py = (y: number) => H - pad - ((y - y0) / Math.max(1, y1 - y0)) * (H - 2 * pad);
  const color: Record<PlanMethod, string> = { 'ce-minus': '#d62728', ce: '#9467bd', 'cce-per-row': '#1f77b4',
    'cce-shared': '#2ca02c', 'cce-in-batch': '#ff7f0e', 'cce-mixed': '#8c564b' };
  const ticks: string[] = [];
  for (let x = x0; x <= x1; x++)
    ticks.push(`<line x1="${px(x)}" y1="${H - pad}" x2="${px(x)}" y2="${H - pad + 4}" stroke="#333"/>`,
      `<text x="${px(x)}" y="${H - pad + 16}" font-size="11" text-anchor="middle">${10 ** x}</text>`);
  for (let y = y0; y <= y1; y++)
    ticks.push(`<line x1="${pad - 4}" y1="${py(y)}" x2="${pad}" y2="${py(y)}" stroke="#333"/>`,
      `<text x="${pad - 6}" y="${py(y) + 4}" font-size="11" text-anchor="end">${10 ** y}</text>`);
  const dots = all.map((e, i) => `<circle cx="${px(xs[i]!).toFixed(1)}" cy="${py(ys[i]!).toFixed(1)}" r="` +
    `${front.includes(e) ? 5 : 3}" fill="${color[e.config.method]}"><title>${describe(e.config)}: ` +
    `${gib(e.peakBytes)} GiB, ${e.stepMs.toFixed(2)} ms</title></circle>`);
  const legend = PLAN_METHODS.map((m, i) => `<text x="${W - pad - 110}" y="${pad + 14 * i}" fill="${color[m]}" ` +
    `font-size="12">${m}</text>`);
  const by = py(yb).toFixed(1);
  return [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<line x1="${pad}" y1="${H - pad}" x2="${W - pad}" y2="${H - pad}" stroke="#333"/>`,
    `<line x1="${pad}" y1="${pad}" x2="${pad}" y2="${H - pad}" stroke="#333"/>`, ...ticks,
    `<line x1="${pad}" y1="${by}" x2="${W - pad}" y2="${by}" stroke="#999" stroke-dasharray="4"/>`,
    `<text x="${pad + 4}" y="${Number(by) - 4}" font-size="12">budget ${gib(budget)} GiB</text>`,
    `<text x="${W / 2}" y="${H - 15}" font-size="12" text-anchor="middle">step ms (log scale; larger dots: the ` +
    'Pareto front)</text>',
    `<text x="15" y="${H / 2}" font-size="12" transform="rotate(-90 15 ${H / 2})">peak GiB (log scale)</text>`,
    ...dots, ...legend, '</svg>'].join('\n') + '\n';
}

function readRuns(flag: string, runsPath: string): { device: string; model: PlanModel; runs: MeasuredRun[] } {
  let j: { device: string; model: PlanModel; runs: MeasuredRun[] };
  try {
    j = JSON.parse(readFileSync(runsPath, 'utf8'));
  } catch (e) {
    throw new UsageError(`${flag} ${runsPath}: ${(e as Error).message}`, 'plan');
  }
  if (!Array.isArray(j?.runs) || !j.model) throw new UsageError(`${flag} ${runsPath}: no runs and model`, 'plan');
  return j;
}

/** Each run measured against predicted; the table's rows and the share within 10 % (memory) and 20 % (time). */
function comparison(j: { model: PlanModel; runs: MeasuredRun[] }, cal: Calibration) {
  const pct = (e: number | null) => (e === null ? '-' : `${(e * 100).toFixed(1)}%`);
  const rows = compareRuns(j.model, j.runs, cal);
  const text = rows.map((r) => [describe(r.config), r.stepMs === null ? '-' : r.stepMs.toFixed(2),
    r.predictedMs.toFixed(2), pct(r.msError),
    r.peakBytes === null ? '-' : gib(r.peakBytes), gib(r.predictedBytes), pct(r.bytesError)]);
  const head = ['configuration', 'ms', 'predicted', 'error', 'GiB', 'predicted', 'error'];
  const timed = rows.filter((r) => r.msError !== null), sized = rows.filter((r) => r.bytesError !== null);
  const inTime = timed.filter((r) => Math.abs(r.msError!) <= 0.2).length;
  const inMem = sized.filter((r) => Math.abs(r.bytesError!) <= 0.1).length;
  const summary = `${inMem} of ${sized.length} within 10 % of the measured peak memory, ${inTime} of ${timed.length} ` +
    'within 20 % of the measured step time';
  return { rows, head, text, summary };
}

/** --calibrate: fit the cost model to measured runs, store it, and show each run measured against predicted. */
function calibrate(runsPath: string, outPath: string): number {
  const j = readRuns('--calibrate', runsPath);
  const cal = fitCalibration(j.model, j.runs, String(j.device));
  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(outPath, JSON.stringify(cal, null, 1) + '\n');
  out(`ccekit plan: cost model fitted to ${j.runs.length} runs on ${cal.device}, stored in ${outPath}`);
  const c = comparison(j, cal);
  out(table([c.head, ...c.text]));
  out(`fitted runs: ${c.summary}`);
  return 0;
}

/** --check: the stored (or given) calibration's predictions against runs it was not fitted on. */
function check(runsPath: string, cal: Calibration, json?: string, md?: string): number {
  const j = readRuns('--check', runsPath);
  const c = comparison(j, cal);
  const what = cal.source === 'measured' ? `calibrated on ${cal.device}` : 'defaults (not measured)';
  out(`ccekit plan: ${j.runs.length} runs measured on ${j.device} against the cost model ${what}`);
  out(table([c.head, ...c.text]));
  out(c.summary);
  if (json !== undefined) writeFileSync(json, JSON.stringify({ device: j.device, model: j.model, calibration: cal,
    comparison: c.rows, summary: c.summary }, null, 1) + '\n');
  if (md !== undefined) {
    const line = (r: string[]) => `| ${r.join(' | ')} |`;
    writeFileSync(md, [`Runs measured on ${j.device}; predictions of the cost model ${what}.`, '',
      line(c.head), line(c.head.map((_, i) => (i ? '---:' : '---'))), ...c.text.map(line), '', c.summary, '']
      .join('\n'));
  }
  return 0;
}

export async function cmdPlan(argv: string[]): Promise<number> {
  const o = parseFlags('plan', argv, PLAN_FLAGS);
  if (o.calibrate !== undefined) {
    const dest = o.calibration ?? defaultCalibrationPath();
    checkOutFile(dest, '--calibration');
    return calibrate(o.calibrate, dest);
  }
  for (const [f, flag] of [[o.svg, '--svg'], [o.json, '--json'], [o.md, '--md']] as const)
    if (f !== undefined) checkOutFile(f, flag);
  if (o.check !== undefined) return check(o.check, calibrationFrom(o.calibration), o.json, o.md);
  if (o.md !== undefined) throw new UsageError('--md goes with --check', 'plan');
  if (o.budget === undefined) throw new UsageError('--budget GIB is required', 'plan');
  const methods = o.methods.split(',').map((m) => m.trim()) as PlanMethod[];
  const bad = methods.find((m) => !PLAN_METHODS.includes(m));
  if (bad) throw new UsageError(`--methods: '${bad}' is not one of ${PLAN_METHODS.join(', ')}`, 'plan');
  const batches = intList('plan', '--batch', o.batch, 1, 1 << 20);
  const lens = o['seq-len'] ? intList('plan', '--seq-len', o['seq-len'], 1, o['max-len']) : [o['max-len']];
  const ks = intList('plan', '--negatives', o.negatives, 1, 1 << 24);
  const cal = calibrationFrom(o.calibration);
  const grid: PlanConfig[] = [];
  for (const method of methods)
    for (const batch of batches)
      for (const seqLen of lens)
        for (const K of method === 'ce' || method === 'cce-in-batch' ? [0] : ks)
          grid.push({ method, batch, seqLen, K,
            ...(method === 'cce-shared' || method === 'cce-mixed' ? { share: o.share } : {}) });
  const model = { V: o.v, D: o.d, maxLen: o['max-len'], blocks: o.blocks, heads: o.heads, fill: o.fill };
  const budget = o.budget * 2 ** 30;
  const plan = planGrid(model, grid, budget, cal);
  out(`ccekit plan: V ${o.v}, D ${o.d}, max length ${o['max-len']}, ${o.blocks} blocks, budget ${o.budget} GiB; ` +
    `cost model ${cal.source === 'measured' ? `calibrated on ${cal.device}` : 'defaults (not measured)'}`);
  out(`${plan.fitting.length} of ${plan.all.length} configurations fit; Pareto front (time a row, candidates a row, ` +
    'rows a step):');
  const row = (e: PlanEstimate) => [e.config.method, String(e.config.batch), String(e.config.seqLen),
    String(e.config.K), String(e.rows), String(e.candidates), gib(e.peakBytes), e.stepMs.toFixed(2)];
  const head = ['method', 'batch', 'length', 'K', 'rows', 'candidates', 'peak GiB', 'step ms'];
  out(table([head, ...plan.front.map(row)]));
  out(`recommended: ${describe(plan.recommended.config)} (${gib(plan.recommended.peakBytes)} GiB, ` +
    `${plan.recommended.stepMs.toFixed(2)} ms, ${plan.recommended.rows} rows x ${plan.recommended.candidates} ` +
    'candidates a step)');
  if (o.svg !== undefined) writeFileSync(o.svg, svg(plan.all, plan.front, budget));
  if (o.json !== undefined)
    writeFileSync(o.json, JSON.stringify({ model, budget, calibration: cal, ...plan }, null, 1));
  return 0;
}
