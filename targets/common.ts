// What every emitter shares: the element-index formula, the header comment and the parameter manifest.
import type { LoweredKernel } from '../codegen/lower.js';
import type { ParamDoc } from '../codegen/target.js';
import type { Schedule } from '../codegen/schedule.js';


/**
 * log(1 + x) for |x| < 0.5 as 2·atanh(z), z = x / (2 + x) ∈ (−1/3, 1/5): 2z·(1 + w/3 + w²/5 + … + w⁶/13),
 * w = z² (relative error < 2e-8, below fp32's), for targets whose log is accurate near 1 only in absolute terms
 * (WGSL, Triton's tl.log).
 * z, w: the target's spelling of both; lit: of a float literal.
 */
export function log1pSeries(z: string, w: string, lit: (v: number) => string): string {
  const odd = [1, 3, 5, 7, 9, 11, 13].map((k) => lit(1 / k));
  const horner = odd.slice(0, -1).reduceRight((acc, c) => `(${c} + ${w} * ${acc})`, odd[odd.length - 1]!);
  return `${lit(2)} * ${z} * ${horner}`;
}

/** d of element j of this lane (see codegen/simt.ts). */
export function elementIndexExpr(j: string, s: Schedule): string {
  if (s.vec === 1) return s.lanes === 1 ? j : `${j} * ${s.lanes} + lane`;
  return `((${j} / ${s.vec}) * ${s.lanes} + lane) * ${s.vec} + ${j} % ${s.vec}`;
}

export function kernelDoc(lk: LoweredKernel, comment: string): string {
  const k = lk.kernel;
  const grid = `grid: one program per ${lk.schedule.rows} rows of ${k.rowDim}; ${lk.invocations} threads; `;
  const lines = [`${k.name}: ${k.doc}`, `${grid}vectors of ${k.vecDim} ≤ ${lk.blockD}`];
  for (const p of k.params) {
    const doc = p.doc ? ' — ' + p.doc : '';
    if (p.kind === 'tensor') lines.push(`  ${p.name}: ${p.dtype}[${p.shape.join(', ')}] ${p.access}${doc}`);
    else lines.push(`  ${p.name}: ${p.type}${doc}`);
  }
  return lines.map((l) => `${comment} ${l}`).join('\n');
}

/**
 * The parameter manifest of a lowered kernel. `bindings`: the target binds tensors by index in group 0 and the
 * scalars and dims as one uniform struct after them (WGSL).
 */
export function paramsDoc(lk: LoweredKernel, bindings = false): ParamDoc[] {
  const k = lk.kernel;
  const out: ParamDoc[] = [];
  let binding = 0;
  for (const p of k.params) {
    if (p.kind === 'tensor') {
      const { name, dtype, shape, access, doc } = p;
      out.push({ name, kind: 'tensor', dtype, shape, access, doc, binding: bindings ? binding++ : undefined });
    } else out.push({ name: p.name, kind: 'scalar', dtype: p.type, doc: p.doc });
  }
  for (const d of k.dims) out.push({ name: d, kind: 'dim', dtype: 'i32' });
  if (bindings) {
    const doc = 'scalars and dims, in the order above';
    out.push({ name: 'params', kind: 'scalar', dtype: 'uniform struct', binding, doc });
  }
  return out;
}
