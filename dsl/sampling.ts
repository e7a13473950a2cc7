// In-kernel negative sampling: Philox4x32-10 keyed by the seed, counter (slot, row, stream, 0), so the backward
// regenerates the forward's negatives and every target draws the same items (runtime/philox.ts is the host twin).
// Items: uniform over the catalog by a multiply-high of the first word (Lemire), or from a distribution q
// through a Walker alias table (u32 thresholds, compared with the second word).
import type { KernelBuilder, Tensor } from './builder.js';
import { type Val, select, u32 } from './values.js';

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** Ten Philox rounds; returns the four output words. */
export function philox4x32(kb: KernelBuilder<string>, counter: [Val<'u32'>, Val<'u32'>, Val<'u32'>, Val<'u32'>], key: [Val<'u32'>, Val<'u32'>], name: string): Val<'u32'>[] {
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
    [c0, c1, c2, c3] = [kb.let(`${name}_r${r}a`, hi1.xor(c1).xor(k0)), kb.let(`${name}_r${r}b`, lo1), kb.let(`${name}_r${r}c`, hi0.xor(c3).xor(k1)), kb.let(`${name}_r${r}d`, lo0)];
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
    alias: sampling === 'given' ? kb.input('alias_table', 'u32', ['V2'] as const, 'Walker alias table: [u32 threshold, alias item] per item') : undefined,
  };
}

/** Philox streams: negatives of one row (stream 0), or of a group of rows that share them (stream 1). */
export const STREAM_ROW = 0;
export const STREAM_SHARED = 1;

/** Negative `slot` of `row` (or of group `row` in stream 1): an item id in [0, V). */
export function sampleItem(kb: KernelBuilder<string>, s: Sampler, row: Val<'i32'>, slot: Val<'i32'>, V: Val<'i32'>, name: string, stream = STREAM_ROW): Val<'i32'> {
  const [x0, x1] = philox4x32(kb, [slot.to('u32'), row.to('u32'), u32(stream), u32(0)], [s.seedLo, s.seedHi], name);
  const col = kb.let(`${name}_col`, x0!.mulhi(V.to('u32')).to('i32'));
  if (!s.alias) return col;
  const th = kb.let(`${name}_th`, kb.load(s.alias, col.mul(2)));
  const keep = th.eq(0xffffffff).or(x1!.lt(th));
  return kb.let(`${name}_item`, select(keep, col, kb.load(s.alias, col.mul(2).add(1)).to('i32')));
}
