// In-kernel negative sampling: Philox4x32-10 keyed by the seed, counter (slot / P, row, stream, 0), so the
// backward regenerates the forward's negatives and every target draws the same items (runtime/philox.ts is the
// host twin). One call serves P consecutive slots (P = drawsPerCall): uniform over the catalog, P = 4 and slot
// j takes word j mod 4, which a multiply-high (Lemire) maps to an item; from a distribution q through a Walker
// alias table, P = 1: word 0 picks the column, word 1 is compared with its u32 threshold. A kernel that draws
// 4 consecutive uniform slots a step runs Philox once for them, not 4 times. (Two alias draws a call made ptxas
// spill the deterministic backward at the default schedule.)
import type { KernelBuilder, Tensor } from './builder.js';
import { type Val, select, u32 } from './values.js';

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** Ten Philox rounds; returns the four output words. */
export function philox4x32(
  kb: KernelBuilder<string>,
  counter: [Val<'u32'>, Val<'u32'>, Val<'u32'>, Val<'u32'>],
  key: [Val<'u32'>, Val<'u32'>],
  name: string,
): Val<'u32'>[] {
  let [c0, c1, c2, c3] = counter;
  let [k0, k1] = key;
  for (let r = 0; r < 10; r++) {
    if (r > 0) {
      k0 = k0.add(W0);
      k1 = k1.add(W1);
    }
    const hi0 = c0.mulhi(M0), lo0 = c0.mul(M0);
    const hi1 = c2.mulhi(M1), lo1 = c2.mul(M1);
    // Bind each round's words, so the expression tree stays linear.
    [c0, c1, c2, c3] = [
      kb.let(`${name}_r${r}a`, hi1.xor(c1).xor(k0)),
      kb.let(`${name}_r${r}b`, lo1),
      kb.let(`${name}_r${r}c`, hi0.xor(c3).xor(k1)),
      kb.let(`${name}_r${r}d`, lo0),
    ];
  }
  return [c0, c1, c2, c3];
}

export interface Sampler {
  seedLo: Val<'u32'>;
  seedHi: Val<'u32'>;
  /** Walker alias table, interleaved per item: [threshold, alias item] as u32 words (V2 = 2·V). */
  alias?: Tensor<'u32', readonly ['V2']>;
}

/** The sampler's kernel parameters: the Philox key, and for a given q the Walker alias table. */
export function samplerParams(kb: KernelBuilder<string>, sampling: 'uniform' | 'given'): Sampler {
  return {
    seedLo: kb.scalar('seed_lo', 'u32', 'Philox key, low word'),
    seedHi: kb.scalar('seed_hi', 'u32', 'Philox key, high word'),
    alias: sampling === 'given'
      ? kb.input('alias_table', 'u32', ['V2'] as const, 'Walker alias table: [u32 threshold, alias item] per item')
      : undefined,
  };
}

/** Philox streams: negatives of one row (stream 0), or of a group of rows that share them (stream 1). */
export const STREAM_ROW = 0;
export const STREAM_SHARED = 1;

/** Slots one Philox call serves: 4 uniform draws (a word each), or 1 through the alias table (two words). */
export const drawsPerCall = (throughAlias: boolean): number => (throughAlias ? 1 : 4);

/** Word `i` (0..3) of a Philox output, `i` known only at run time. */
function wordAt(words: Val<'u32'>[], i: Val<'u32'>): Val<'u32'> {
  return select(i.eq(0), words[0]!, select(i.eq(1), words[1]!, select(i.eq(2), words[2]!, words[3]!)));
}

/**
 * Negatives of slots slot0 .. slot0 + n − 1 of `row` (or of group `row` in stream 1): item ids in [0, V).
 * n is a power of two and slot0 a multiple of n, so the slots share ⌈n / P⌉ Philox calls.
 */
export function sampleItems(
  kb: KernelBuilder<string>,
  s: Sampler,
  row: Val<'i32'>,
  slot0: Val<'i32'>,
  n: number,
  V: Val<'i32'>,
  name: string,
  stream = STREAM_ROW,
): Val<'i32'>[] {
  const P = drawsPerCall(!!s.alias);
  const shift = Math.log2(P);
  const out: Val<'i32'>[] = [];
  for (let c = 0; c < Math.max(1, n / P); c++) {
    const ctr = kb.let(`${name}_ctr${c}`, slot0.to('u32').shr(shift).add(c));
    const words = philox4x32(kb, [ctr, row.to('u32'), u32(stream), u32(0)], [s.seedLo, s.seedHi], `${name}${c}`);
    // The draw's index within its call: known where the slots cover whole calls, else from slot0.
    const first = n >= P ? undefined : kb.let(`${name}_w${c}`, slot0.to('u32').bitand(P - 1));
    for (let j = 0; j < Math.min(n, P); j++) {
      // Uniform: word j of the call (k = 0); alias (P = 1): words 0 and 1.
      const at = (k: number) => (first ? wordAt(words, first.add(j + k)) : words[j + k]!);
      const tag = `${name}_${c * P + j}`;
      const col = kb.let(`${tag}_col`, at(0).mulhi(V.to('u32')).to('i32'));
      if (!s.alias) {
        out.push(col);
        continue;
      }
      const th = kb.let(`${tag}_th`, kb.load(s.alias, col.mul(2)));
      const keep = th.eq(0xffffffff).or(at(1).lt(th));
      out.push(kb.let(`${tag}_item`, select(keep, col, kb.load(s.alias, col.mul(2).add(1)).to('i32'))));
    }
  }
  return out;
}

/** Negative `slot` of `row` (or of group `row` in stream 1): an item id in [0, V). */
export function sampleItem(
  kb: KernelBuilder<string>,
  s: Sampler,
  row: Val<'i32'>,
  slot: Val<'i32'>,
  V: Val<'i32'>,
  name: string,
  stream = STREAM_ROW,
): Val<'i32'> {
  return sampleItems(kb, s, row, slot, 1, V, name, stream)[0]!;
}
