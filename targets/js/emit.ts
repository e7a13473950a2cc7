// The JS target (the CPU executor of the IR): the lowered kernel printed as a JavaScript function that computes
// in float64.
// Rows never interact except through atomics, so it runs row slots one after another (including the
// padding slots of the last program, whose row_valid is false); a vec region is a loop over all
// BLOCK_D elements and a lane reduction is a no-op. Every memory access is bounds-checked.
import type { BinFn, UnFn } from '../../codegen/ir.js';
import type { LStmt, LoweredKernel } from '../../codegen/lower.js';
import { type Dialect, ExprPrinter, Lines, cBinary } from '../../codegen/render.js';
import { type Emitted, type TargetRecord } from '../../codegen/target.js';
import { CPU_CAPS, CPU_TRAITS } from './caps.js';
import { paramsDoc } from '../common.js';

/** Buffers by parameter name; a fixed-point accumulator is a BigInt64Array (units of 1/scale). */
export type CpuBuffers = Record<string, Float64Array | Int32Array | Uint32Array | BigInt64Array>;
export type CpuKernelFn = (buffers: CpuBuffers, scalars: Record<string, number>, programs: number) => void;

const dialect: Dialect = {
  constant: (v, t) => (t === 'bool' ? (v ? 'true' : 'false') : Object.is(v, -0) ? '-0' : String(v)),
  param: (name) => `P_${name}`,
  ref: (name, sym, inRegion) => (sym?.s === 'vec' && sym.array && inRegion ? `${name}[d]` : name),
  row: () => 'row',
  group: (n) => `Math.floor(program / ${n})`,
  rowValid: () => 'row_valid',
  d: () => 'd',
  bin: (fn: BinFn, a, b, t) => {
    if (t === 'i32' || t === 'u32') {
      const w = (x: string) => (t === 'i32' ? `(${x} | 0)` : `(${x} >>> 0)`);
      if (fn === 'add') return w(`${a} + ${b}`);
      if (fn === 'sub') return w(`${a} - ${b}`);
      if (fn === 'mul') return w(`Math.imul(${a}, ${b})`);
      if (fn === 'div') return w(`Math.trunc(${a} / ${b})`);
      if (fn === 'mod') return w(`${a} % ${b}`);
      if (fn === 'shr' && t === 'u32') return `(${a} >>> ${b})`;
      if (fn === 'mulhi') return `mulhi(${a}, ${b})`;
      if (fn === 'shl' || fn === 'bitand' || fn === 'bitor' || fn === 'bitxor') return w(cBinary(fn, a, b, '', ''));
    }
    if (fn === 'eq') return `(${a} === ${b})`;
    if (fn === 'ne') return `(${a} !== ${b})`;
    if (fn === 'pow') return `Math.pow(${a}, ${b})`;
    return cBinary(fn, a, b, 'Math.min', 'Math.max');
  },
  un: (fn: UnFn, a, t) => {
    const f: Record<UnFn, string> = {
      neg: t === 'i32' ? `(-${a} | 0)` : `(-${a})`, exp: `Math.exp(${a})`, log: `Math.log(${a})`,
      tanh: `Math.tanh(${a})`, sqrt: `Math.sqrt(${a})`, abs: `Math.abs(${a})`, not: `(!${a})`,
      log1p: `Math.log1p(${a})`, sigmoid: `(1 / (1 + Math.exp(-${a})))`,
    };
    return f[fn];
  },
  select: (c, a, b) => `(${c} ? ${a} : ${b})`,
  cast: (a, from, to) =>
    to === 'f32'
      ? `(+${a})`
      : to === 'i32'
        ? from === 'f32'
          ? `(Math.trunc(${a}) | 0)`
          : `(${a} | 0)`
        : `(${a} >>> 0)`,
  load: (p, index) => `ld(B_${p.name}, ${index}, '${p.name}')`,
};

export function printJs(lk: LoweredKernel): string {
  const k = lk.kernel;
  const out = new Lines('  ', 0);
  const ep = new ExprPrinter(lk, dialect);
  const sym = (n: string) => lk.symbols.get(n)!;
  const isArray = (n: string) => sym(n).s === 'vec' && sym(n).array;
  const lhs = (n: string) => (ep.inRegion && isArray(n) ? `${n}[d]` : n);
  const BD = lk.blockD;

  const emit = (s: LStmt): void => {
    switch (s.k) {
      case 'comment':
        out.line(`// ${s.text}`);
        return;
      case 'decl':
        if (isArray(s.name)) {
          if (ep.inRegion) out.line(`${lhs(s.name)} = ${ep.print(s.init!)};`);
          else out.line(`const ${s.name} = new Float64Array(${BD});`);
        } else out.line(`${s.mut ? 'let' : 'const'} ${s.name} = ${s.init ? ep.print(s.init) : '0'};`);
        return;
      case 'assign':
        out.line(`${lhs(s.name)} = ${ep.print(s.value)};`);
        return;
      case 'load': {
        const v = `(${ep.print(s.mask)} ? ld(B_${s.tensor}, ${ep.print(s.index)}, '${s.tensor}') : 0)`;
        out.line(isArray(s.name) && ep.inRegion ? `${lhs(s.name)} = ${v};` : `const ${s.name} = ${v};`);
        return;
      }
      case 'store':
      case 'atomicAdd': {
        if (s.k === 'atomicAdd' && s.old) {
          out.line(`let ${s.old} = 0;`);
          const text = `${s.old} = fadd(B_${s.tensor}, ${ep.print(s.index)}, ${ep.print(s.value)}, '${s.tensor}');`;
          out.line(s.mask ? `if (${ep.print(s.mask)}) ${text}` : text);
          return;
        }
        const fixed = s.k === 'atomicAdd' && ep.tensorParam(s.tensor).fixed;
        const f = s.k === 'store' ? 'st' : fixed ? 'addq' : 'add';
        const value = `${ep.print(s.value)}${fixed ? ` * P_${s.tensor}_scale` : ''}`;
        const text = `${f}(B_${s.tensor}, ${ep.print(s.index)}, ${value}, '${s.tensor}');`;
        out.line(s.mask ? `if (${ep.print(s.mask)}) ${text}` : text);
        return;
      }
      case 'for':
        out.line(`for (let ${s.v} = ${ep.print(s.start)}; ${s.v} < ${ep.print(s.end)}; ${s.v} += ${s.step}) {`);
        out.indent();
        s.body.forEach(emit);
        out.dedent();
        out.line('}');
        return;
      case 'vec':
        for (const b of s.body) {
          if ((b.k === 'decl' || b.k === 'load') && isArray(b.name))
            out.line(`const ${b.name} = new Float64Array(${BD});`);
        }
        out.line(`for (let d = 0; d < ${BD}; d++) {`);
        out.indent();
        ep.inRegion = true;
        s.body.forEach(emit);
        ep.inRegion = false;
        out.dedent();
        out.line('}');
        return;
      case 'accum': {
        const v = ep.print(s.value);
        out.line(s.fn === 'sum' ? `${s.target} += ${v};` : `${s.target} = Math.max(${s.target}, ${v});`);
        return;
      }
      case 'laneReduce':
        return;
    }
  };
  const head = [
    `// ${k.name} — ccekit CPU executor (float64), schedule ${JSON.stringify(lk.schedule)}`,
    ...k.params.filter((p) => p.kind === 'tensor').map((p) => `const B_${p.name} = buffers['${p.name}'];`),
    ...k.params.filter((p) => p.kind === 'scalar').map((p) => `const P_${p.name} = scalars['${p.name}'];`),
    ...k.dims.map((d) => `const P_${d} = scalars['${d}'];`),
    'const mulhi = (a, b) => { const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16, ' +
      'lo = a0 * b0, m1 = a1 * b0 + (lo >>> 16), m2 = a0 * b1 + (m1 & 0xffff); ' +
      'return (a1 * b1 + (m1 >>> 16) + (m2 >>> 16)) >>> 0; };',
    "const ccekit_at = (b, i, n) => { if (!(i >= 0 && i < b.length)) " +
      "throw new RangeError(n + '[' + i + '] is out of bounds (length ' + b.length + ')'); return i; };",
    `const ld = (b, i, n) => b[ccekit_at(b, i, n)];`,
    `const st = (b, i, v, n) => { b[ccekit_at(b, i, n)] = v; };`,
    `const add = (b, i, v, n) => { b[ccekit_at(b, i, n)] += v; };`,
    `const fadd = (b, i, v, n) => { const o = b[ccekit_at(b, i, n)]; b[i] = o + v; return o; };`,
    `const addq = (b, i, v, n) => { b[ccekit_at(b, i, n)] += BigInt(Math.round(v)); };`,
    `for (let row = 0; row < programs * ${lk.schedule.rows}; row++) {`,
    `  const row_valid = row < P_${k.rowDim}, program = Math.floor(row / ${lk.schedule.rows});`,
  ];
  for (const h of head.slice(0, -2)) out.line(h);
  out.line(head[head.length - 2]);
  out.indent();
  out.line(head[head.length - 1].trim());
  lk.body.forEach(emit);
  out.dedent();
  out.line('}');
  return out.toString();
}

export function compileJs(lk: LoweredKernel): CpuKernelFn {
  return new Function('buffers', 'scalars', 'programs', printJs(lk)) as CpuKernelFn;
}

/** The JS printer as an emitter: the function body compileJs runs, with the parameters it reads. */
export function emitJs(lk: LoweredKernel, version: string): Emitted {
  const source = `// Generated by ccekit ${version} — JavaScript.\n${printJs(lk)}`;
  return { source, entry: lk.kernel.name, parameters: paramsDoc(lk) };
}

/** The CPU (JS printer) target record (default caps and traits: caps.ts). */
export const cpuTarget: TargetRecord<'cpu'> = {
  name: 'cpu',
  ext: 'js',
  caps: CPU_CAPS,
  traits: CPU_TRAITS,
  emit: emitJs,
};
