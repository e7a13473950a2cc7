import { describe, it, expect } from 'vitest';
import { CceInputError, MAX_I32_OFFSET, checkSizes, logQ, validateProblem } from '../runtime/problem.js';
import type { CceProblem, ProblemSizes } from '../runtime/problem.js';
import { randomProblem } from '../runtime/random.js';
import { f32ToBf16Bits, f32ToF16Bits, type FloatDType } from '../runtime/numeric.js';

// A valid sampled problem: N=4, D=3, V=10, K=5.
function base(dtype: FloatDType = 'f32', extra: { popularity?: boolean } = {}): CceProblem {
  return randomProblem({ N: 4, D: 3, V: 10, K: 5, dtype, seed: 1, collisionRate: 0.2, ignoreFraction: 0.25, ...extra });
}

type Case = { name: string; argument: string; make: () => unknown; match?: RegExp };

const cases: Case[] = [
  { name: 'N = 0', argument: 'N', make: () => ({ ...base(), N: 0 }) },
  { name: 'N non-integer', argument: 'N', make: () => ({ ...base(), N: 2.5 }) },
  { name: 'N NaN', argument: 'N', make: () => ({ ...base(), N: NaN }) },
  { name: 'V = 1', argument: 'V', make: () => ({ ...base(), V: 1 }) },
  { name: 'K = 0 sampled', argument: 'K', make: () => ({ ...base(), K: 0 }) },
  { name: 'K negative', argument: 'K', make: () => ({ ...base(), K: -1 }) },
  { name: 'D = 0', argument: 'D', make: () => ({ ...base(), D: 0 }) },
  { name: 'D negative', argument: 'D', make: () => ({ ...base(), D: -3 }) },
  { name: 'bad dtype', argument: 'dtype', make: () => ({ ...base(), dtype: 'f64' }) },
  { name: 'bad reduction', argument: 'reduction', make: () => ({ ...base(), reduction: 'avg' }) },
  { name: 'bad mode', argument: 'mode', make: () => ({ ...base(), mode: 'partial' }) },
  { name: 'bad ignoreIndex', argument: 'ignoreIndex', make: () => ({ ...base(), ignoreIndex: 0.5 }) },
  { name: 'E wrong length', argument: 'E', make: () => ({ ...base(), E: new Float32Array(11) }), match: /length 11/ },
  { name: 'C wrong length', argument: 'C', make: () => ({ ...base(), C: new Float32Array(29) }) },
  {
    name: 'E f32 needs Float32Array',
    argument: 'E',
    make: () => ({ ...base(), E: new Uint16Array(12) }),
    match: /Float32Array/,
  },
  {
    name: 'C f16 needs Uint16Array',
    argument: 'C',
    make: () => ({ ...base('f16'), C: new Float32Array(30) }),
    match: /Uint16Array/,
  },
  { name: 'E bf16 needs Uint16Array', argument: 'E', make: () => ({ ...base('bf16'), E: new Float64Array(12) }) },
  { name: 'E plain array', argument: 'E', make: () => ({ ...base(), E: new Array(12).fill(0) }) },
  { name: 'targets wrong type', argument: 'targets', make: () => ({ ...base(), targets: new Float32Array(4) }) },
  { name: 'targets wrong length', argument: 'targets', make: () => ({ ...base(), targets: new Int32Array(3) }) },
  {
    name: 'target out of range',
    argument: 'targets',
    make: () => {
      const p = base();
      p.targets[2] = 10;
      return p;
    },
    match: /item id 10 at \[2\]/,
  },
  {
    name: 'target negative (not ignoreIndex)',
    argument: 'targets',
    make: () => {
      const p = base();
      p.targets[1] = -1;
      return p;
    },
  },
  { name: 'negatives missing', argument: 'negatives', make: () => ({ ...base(), negatives: undefined }) },
  { name: 'negatives wrong type', argument: 'negatives', make: () => ({ ...base(), negatives: new Uint32Array(20) }) },
  { name: 'negatives wrong length', argument: 'negatives', make: () => ({ ...base(), negatives: new Int32Array(19) }) },
  {
    name: 'negative out of range',
    argument: 'negatives',
    make: () => {
      const p = base();
      p.negatives![3 * 5 + 4] = 12;
      return p;
    },
    match: /^negatives: item id 12 at \[3, 4\] is outside \[0, V=10\)/,
  },
  {
    name: 'negative below zero',
    argument: 'negatives',
    make: () => {
      const p = base();
      p.negatives![0] = -1;
      return p;
    },
  },
  {
    name: 'NaN in E (f32)',
    argument: 'E',
    make: () => {
      const p = base();
      (p.E as Float32Array)[5] = NaN;
      return p;
    },
    match: /NaN at \[1, 2\]/,
  },
  {
    name: 'Inf in C (f32)',
    argument: 'C',
    make: () => {
      const p = base();
      (p.C as Float32Array)[0] = -Infinity;
      return p;
    },
  },
  {
    name: 'Inf in E (f16 bits)',
    argument: 'E',
    make: () => {
      const p = base('f16');
      (p.E as Uint16Array)[0] = f32ToF16Bits(Infinity);
      return p;
    },
  },
  {
    name: 'NaN in C (f16 bits)',
    argument: 'C',
    make: () => {
      const p = base('f16');
      (p.C as Uint16Array)[7] = 0x7e00;
      return p;
    },
  },
  {
    name: 'NaN in C (bf16 bits)',
    argument: 'C',
    make: () => {
      const p = base('bf16');
      (p.C as Uint16Array)[3] = f32ToBf16Bits(NaN);
      return p;
    },
  },
  {
    name: 'Inf in E (bf16 bits)',
    argument: 'E',
    make: () => {
      const p = base('bf16');
      (p.E as Uint16Array)[2] = 0xff80;
      return p;
    },
  },
  {
    name: 'itemProbs wrong length',
    argument: 'itemProbs',
    make: () => ({ ...base('f32', { popularity: true }), itemProbs: new Float64Array(9).fill(0.1) }),
  },
  {
    name: 'itemProbs wrong type',
    argument: 'itemProbs',
    make: () => ({ ...base(), itemProbs: new Float32Array(10).fill(0.1) }),
  },
  {
    name: 'itemProbs negative',
    argument: 'itemProbs',
    make: () => {
      const p = base('f32', { popularity: true });
      p.itemProbs![4] = -0.01;
      return p;
    },
  },
  { name: 'itemProbs all zero', argument: 'itemProbs', make: () => ({ ...base(), itemProbs: new Float64Array(10) }) },
  {
    name: 'itemProbs NaN',
    argument: 'itemProbs',
    make: () => {
      const p = base('f32', { popularity: true });
      p.itemProbs![0] = NaN;
      return p;
    },
  },
  {
    name: 'itemProbs Inf',
    argument: 'itemProbs',
    make: () => {
      const p = base('f32', { popularity: true });
      p.itemProbs![9] = Infinity;
      return p;
    },
  },
  {
    name: 'sampled negative with q = 0',
    argument: 'negatives',
    make: () => {
      const p = base('f32', { popularity: true });
      const q = p.itemProbs!;
      const n = p.negatives![6]!;
      q[n] = 0;
      return p;
    },
    match: /q = 0/,
  },
  // Sizes that overflow 32-bit offsets; arrays are deliberately tiny (must not be touched first).
  {
    name: 'N*D overflow',
    argument: 'N',
    make: () => ({ ...base(), N: 2 ** 20, D: 2 ** 11 }),
    match: /N·D = 2147483648 .*E and dE/,
  },
  {
    name: 'V*D overflow',
    argument: 'V',
    make: () => ({ ...base(), V: 2 ** 29, D: 4 }),
    match: /V·D = 2147483648 .*C and dC/,
  },
  {
    name: 'N*K overflow',
    argument: 'N',
    make: () => ({ ...base(), N: 2 ** 16, K: 2 ** 15 }),
    match: /N·K = 2147483648 .*negatives/,
  },
  { name: 'N beyond i32', argument: 'N', make: () => ({ ...base(), N: 5e9 }), match: /5000000000 exceeds 2147483647/ },
  { name: 'V beyond i32', argument: 'V', make: () => ({ ...base(), V: 5e9 }), match: /5000000000 exceeds/ },
  { name: 'D beyond i32', argument: 'D', make: () => ({ ...base(), D: 3e9 }), match: /3000000000 exceeds/ },
  { name: 'K beyond i32', argument: 'K', make: () => ({ ...base(), K: 2 ** 31 }), match: /exceeds/ },
  {
    name: 'N*K overflow with shared groups',
    argument: 'N',
    make: () => ({ ...base(), N: 2 ** 20, K: 2 ** 11, shareRows: 16 }),
    match: /N·K/,
  },
  {
    name: 'ignoreIndex beyond i32',
    argument: 'ignoreIndex',
    make: () => ({ ...base(), ignoreIndex: 2 ** 32 + 5 }),
    match: /32-bit/,
  },
  { name: 'ignoreIndex below i32', argument: 'ignoreIndex', make: () => ({ ...base(), ignoreIndex: -(2 ** 31) - 1 }) },
];

describe('validateProblem', () => {
  it('accepts valid problems of every dtype and mode', () => {
    for (const dtype of ['f32', 'f16', 'bf16'] as FloatDType[]) {
      expect(() => validateProblem(base(dtype))).not.toThrow();
      expect(() => validateProblem(base(dtype, { popularity: true }))).not.toThrow();
      const full = randomProblem({ N: 3, D: 2, V: 5, K: 0, dtype, seed: 2, mode: 'full', ignoreFraction: 0.3 });
      expect(() => validateProblem(full)).not.toThrow();
      for (const reduction of ['mean', 'sum', 'none'] as const) expect(() => validateProblem({ ...full, reduction })).not.toThrow();
    }
  });

  it('accepts sizes right at the 32-bit limit check boundary', () => {
    // N*D == MAX_I32_OFFSET is allowed by the size check (fails later on the array length instead).
    const p = { ...base(), N: MAX_I32_OFFSET, D: 1, K: 1 };
    try {
      validateProblem(p);
      throw new Error('expected a throw');
    } catch (err) {
      expect(err).toBeInstanceOf(CceInputError);
      expect((err as CceInputError).argument).toBe('E');
      expect((err as Error).message).toMatch(/length/);
    }
  });

  it.each(cases)('rejects $name, naming $argument', ({ argument, make, match }) => {
    let caught: unknown;
    try {
      validateProblem(make() as CceProblem);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(CceInputError);
    const err = caught as CceInputError;
    expect(err.argument).toBe(argument);
    expect(err.message.startsWith(argument)).toBe(true);
    expect(err.name).toBe('CceInputError');
    if (match) expect(err.message).toMatch(match);
  });

  it('CceInputError prefixes messages that lack the argument name', () => {
    const e = new CceInputError('K', 'must be positive');
    expect(e.message).toBe('K: must be positive');
    expect(new CceInputError('K', 'K: bad').message).toBe('K: bad');
    expect(e).toBeInstanceOf(Error);
  });
});

describe('checkSizes', () => {
  const ok: ProblemSizes = { N: 4, V: 10, K: 5, D: 3 };
  const thrown = (s: ProblemSizes, names = {}): CceInputError => {
    try {
      checkSizes(s, names);
    } catch (e) {
      expect(e).toBeInstanceOf(CceInputError);
      return e as CceInputError;
    }
    throw new Error(`checkSizes accepted ${JSON.stringify(s)}`);
  };

  it('accepts every product right at the limit, refuses one element more', () => {
    expect(() => checkSizes({ N: MAX_I32_OFFSET, V: 2, K: 1, D: 1 })).not.toThrow();
    expect(() => checkSizes({ N: 1, V: MAX_I32_OFFSET, K: 1, D: 1 })).not.toThrow();
    expect(() => checkSizes({ N: 1, V: 2, K: 1, D: MAX_I32_OFFSET - 1 })).toThrow(/V·D/);
    expect(() => checkSizes({ N: MAX_I32_OFFSET, V: 2, K: 1, D: 1 })).not.toThrow(); // N·K = 2^31 − 1
    expect(thrown({ N: 2 ** 16, V: 2, K: 2 ** 15, D: 1 }).message).toMatch(/^N: N·K = 2147483648/);
    expect(thrown({ N: 2 ** 16, V: 2, K: 1, D: 2 ** 15 }).message).toMatch(/^N: N·D = 2147483648/);
  });

  it('limits deterministic dC to 2·V·D ≤ 2^31 words, only when asked', () => {
    const s = { ...ok, V: 2 ** 20, D: 2 ** 10 + 1 };
    expect(() => checkSizes(s)).not.toThrow();
    expect(thrown({ ...s, deterministic: true }).message).toMatch(/^V: 2·V·D = .*deterministic dC/);
    expect(() => checkSizes({ ...s, D: 2 ** 10, deterministic: true })).not.toThrow();
  });

  it('validateProblem applies the deterministic limit when asked, before touching the arrays', () => {
    const p = { ...base(), V: 2 ** 20, D: 2 ** 10 + 1 };
    const e = (() => {
      try {
        validateProblem(p, { deterministic: true });
      } catch (err) {
        return err as CceInputError;
      }
      throw new Error('accepted');
    })();
    expect(e.argument).toBe('V');
    expect(e.message).toMatch(/deterministic dC/);
    expect(() => validateProblem(p)).toThrow(/^E: length/); // without it: the (tiny) arrays are checked next
  });

  it('ignores K in full mode and needs K ≥ 1 in sampled mode', () => {
    expect(() => checkSizes({ ...ok, N: 2 ** 20, K: 0, D: 2 ** 10, mode: 'full' })).not.toThrow();
    expect(() => checkSizes({ ...ok, N: 2 ** 20, K: 2 ** 12, D: 2 ** 10, mode: 'full' })).not.toThrow();
    expect(thrown({ ...ok, K: 0 }).argument).toBe('K');
  });

  it('checks shareRows and refuses it in full mode', () => {
    expect(() => checkSizes({ ...ok, shareRows: 32 })).not.toThrow();
    expect(thrown({ ...ok, shareRows: 24 }).argument).toBe('shareRows');
    expect(thrown({ ...ok, K: 0, mode: 'full', shareRows: 16 }).message).toMatch(/sampled mode/);
  });

  it('names the arguments as the caller spells them', () => {
    const names = { N: '--n', V: '--v', K: '--k', D: '--d' };
    const e = thrown({ N: 3_000_000, V: 1000, K: 1000, D: 64 }, names);
    expect(e.argument).toBe('--n');
    expect(e.message).toMatch(/^--n: N·K = 3000000000 \(--n 3000000, --k 1000\)/);
    expect(e.message).toContain('lower --n or --k');
    expect(thrown({ ...ok, D: 3e9 }, names).message).toMatch(/^--d: 3000000000 exceeds/);
    expect(thrown({ ...ok, N: 2.5 }, names).message).toMatch(/^--n: must be an integer/);
  });
});

describe('randomProblem checks its options before allocating', () => {
  const gen = { N: 4, D: 3, V: 10, K: 5, dtype: 'f32' as FloatDType, seed: 1 };
  it.each([
    ['N', { N: 5e9 }],
    ['V', { V: 5e9 }],
    ['D', { D: 3e9 }],
    ['N', { N: 3_000_000, K: 1000 }],
    ['N', { N: 0 }],
    ['K', { K: 0 }],
    ['shareRows', { shareRows: 12 }],
    ['dtype', { dtype: 'f64' }],
    ['seed', { seed: NaN }],
    ['ignoreFraction', { ignoreFraction: 2 }],
    ['collisionRate', { collisionRate: -0.5 }],
    ['scale', { scale: Infinity }],
    ['mode', { mode: 'partial' }],
  ] as const)('names %s', (argument, extra) => {
    let caught: unknown;
    try {
      randomProblem({ ...gen, ...(extra as object) } as typeof gen);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(CceInputError);
    expect((caught as CceInputError).argument).toBe(argument);
  });

  it('still builds full-mode problems with K ignored and valid sampled ones', () => {
    const full = randomProblem({ ...gen, K: 7, mode: 'full' });
    expect(full.K).toBe(0);
    expect(() => validateProblem(full)).not.toThrow();
    expect(() => validateProblem(randomProblem({ ...gen, shareRows: 16 }))).not.toThrow();
  });
});

describe('logQ', () => {
  it('is -log(V-1) for uniform sampling and log(itemProbs) otherwise', () => {
    const p = base();
    expect(Array.from(logQ(p))).toEqual(new Array(10).fill(-Math.log(9)));
    const pp = base('f32', { popularity: true });
    const lq = logQ(pp);
    for (let v = 0; v < 10; v++) expect(lq[v]).toBe(Math.log(pp.itemProbs![v]!));
  });
});
