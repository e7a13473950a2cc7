// The correctness suite a GPU runtime must pass: fresh random inputs at odd sizes, every dtype, collisions,
// ignored rows, popularity q, all reductions, full CE; compared with the float64 reference.
import type { Schedule } from '../codegen/schedule.js';
import type { CceResult } from './cpu/run.js';
import { referenceCce } from './cpu/reference.js';
import type { FloatDType } from './numeric.js';
import type { CceProblem, Reduction } from './problem.js';
import { randomProblem } from './random.js';

export interface CheckCase {
  label: string;
  problem: CceProblem;
  gradOutput: number | Float64Array;
}

export interface CheckRow {
  label: string;
  dtype: FloatDType;
  errors: { loss: number; lse: number; dE: number; dC: number };
  tol: { loss: number; grad: number };
  pass: boolean;
  note?: string;
}

/** max|a − b| / max|b|; Infinity when a value is not finite (unwritten outputs are poisoned with NaN). */
export function relErr(a: number | ArrayLike<number>, b: number | ArrayLike<number>): number {
  const A = typeof a === 'number' ? [a] : a;
  const B = typeof b === 'number' ? [b] : b;
  if (A.length !== B.length) return Infinity;
  let num = 0;
  let den = 1e-300;
  for (let i = 0; i < A.length; i++) {
    if (!Number.isFinite(A[i]!)) return Infinity;
    num = Math.max(num, Math.abs(A[i]! - B[i]!));
    den = Math.max(den, Math.abs(B[i]!));
  }
  return num / den;
}

/** Tolerances of the GPU runtimes: f32 inputs 1e-5 loss / 1e-4 gradients; f16 / bf16 1e-3. */
export const gpuTolerance = (dtype: FloatDType) =>
  dtype === 'f32' ? { loss: 1e-5, grad: 1e-4 } : { loss: 1e-3, grad: 1e-3 };

export function checkCases(seed: number, quick = false): CheckCase[] {
  const out: CheckCase[] = [];
  const dtypes: FloatDType[] = ['f32', 'f16', 'bf16'];
  const reductions: Reduction[] = ['mean', 'sum', 'none'];
  const grid: [number, number, number][] = [];
  const Ns = quick ? [7, 513] : [1, 7, 513, 4099];
  const Ds = quick ? [3, 64] : [1, 3, 64, 257];
  const Ks = quick ? [5, 1000] : [1, 5, 1000];
  for (const N of Ns) for (const D of Ds) for (const K of Ks) grid.push([N, D, K]);
  grid.forEach(([N, D, K], i) => {
    const dtype = dtypes[i % 3]!;
    const reduction = reductions[Math.floor(i / 3) % 3]!;
    const popularity = i % 4 === 1;
    const V = popularity ? 1009 : 61 + 97 * (i % 7);
    const ignoreFraction = N > 1 ? 0.15 : 0;
    const drawn = randomProblem({ N, D, V, K, dtype, seed: seed + i, collisionRate: 0.1, ignoreFraction, popularity });
    const p = { ...drawn, reduction };
    const gradOutput = reduction === 'none' ? Float64Array.from({ length: N }, (_, r) => 0.5 + (r % 4) * 0.5) : 1.25;
    const label = `sampled N=${N} D=${D} K=${K} V=${V}${popularity ? ' q' : ''} ${reduction}`;
    out.push({ label, problem: p, gradOutput });
  });
  // Negatives drawn in the kernel (Philox), uniform and from a popularity q through the alias table.
  const drawnCases = [
    [513, 64, 4099, 255, 'f16', false],
    [97, 256, 1009, 1000, 'bf16', true],
    [7, 3, 61, 5, 'f32', true],
  ] as const;
  for (const [N, D, V, K, dtype, popularity] of drawnCases) {
    const p = randomProblem({ N, D, V, K, dtype, seed: seed + 2000 + N, popularity, ignoreFraction: 0.1 });
    const label = `philox N=${N} D=${D} K=${K} V=${V}${popularity ? ' q' : ''} mean`;
    out.push({ label, problem: { ...p, negatives: undefined, philoxSeed: seed * 7 + N }, gradOutput: 1 });
  }
  for (const [N, D, V, dtype] of [[7, 3, 61, 'f32'], [513, 64, 1031, 'bf16'], [129, 257, 301, 'f16']] as const) {
    const p = randomProblem({ N, D, V, K: 0, dtype, seed: seed + 1000 + N, mode: 'full', ignoreFraction: 0.1 });
    out.push({ label: `full N=${N} D=${D} V=${V} mean`, problem: p, gradOutput: 1 });
  }
  return out;
}

export async function runChecks(
  cases: CheckCase[],
  run: (c: CheckCase) => Promise<CceResult> | CceResult,
  onRow?: (r: CheckRow) => void,
): Promise<CheckRow[]> {
  const rows: CheckRow[] = [];
  for (const c of cases) {
    const tol = gpuTolerance(c.problem.dtype);
    let row: CheckRow;
    try {
      const got = await run(c);
      const ref = referenceCce(c.problem, { gradOutput: c.gradOutput });
      // A fused run returns no lse or accepted counts (they never leave the kernel): compare what it returns.
      const fused = got.lse.length === 0;
      // A run for frozen item embeddings returns no dC.
      const errors = {
        loss: relErr(got.loss, ref.loss),
        lse: fused ? 0 : relErr(got.lse, ref.lse),
        dE: relErr(got.dE, ref.dE),
        dC: got.dC.length === 0 ? 0 : relErr(got.dC, ref.dC),
      };
      const kOk =
        fused || c.problem.mode === 'full' || Array.from(got.kAccepted).every((k, i) => k === ref.kAccepted[i]);
      const pass = errors.loss <= tol.loss && errors.lse <= tol.loss && errors.dE <= tol.grad && errors.dC <= tol.grad;
      const note = kOk ? undefined : 'accepted counts differ';
      row = { label: c.label, dtype: c.problem.dtype, errors, tol, pass: pass && kOk, note };
    } catch (e) {
      const errors = { loss: NaN, lse: NaN, dE: NaN, dC: NaN };
      const note = (e as Error).message.split('\n')[0];
      row = { label: c.label, dtype: c.problem.dtype, errors, tol, pass: false, note };
    }
    rows.push(row);
    onRow?.(row);
  }
  return rows;
}

export type { Schedule };
