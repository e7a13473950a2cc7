// The candidate-source interface. A source declares its kernel parameters and yields one or more parts; each
// part is one candidate axis the sweeps (dsl/sweeps.ts) walk with a candidate loop: per row (every row its own
// candidates: tile-scope ids) or shared by the program's rows (cand-scope ids: tile contractions). The sweeps
// never ask which source they run; each source is a file of this folder, and index.ts picks them by options.
import type { KernelBuilder, Tensor } from '../builder.js';
import type { CceOptions } from '../options.js';
import type { Val } from '../values.js';

/** What a source sees when it declares its parameters. */
export interface SourceContext {
  kb: KernelBuilder<'D'>;
  o: CceOptions;
  /** The targets of the loss rows, [N]. */
  targets: Tensor<'i32', readonly ['N']>;
  /** The ignore_index scalar. */
  ignore: Val<'i32'>;
  /** The dimension of global item ids: V, or VG for a vocabulary shard (C then holds V of them). */
  catalog: 'V' | 'VG';
}

export interface Part {
  /** Short name, for comments and generated names. */
  name: string;
  /** Candidates shared by the program's rows (cand-scope ids), else each row its own (tile-scope ids). */
  shared: boolean;
  /** Candidates of the axis (a uniform loop bound). */
  count: Val<'i32'>;
  /** The item at `slot` (kk + cidx, a cand value) and whether the slot holds a candidate. */
  at(slot: Val<'i32'>): { n: Val<'i32'>; inRange: Val<'bool'> };
  /** log q(n) of a candidate of this part, or undefined: no correction and no count (the full catalog). */
  logq?(n: Val<'i32'>, mask: Val<'bool'>): Val<'f32'>;
}

export interface Source {
  parts: Part[];
  /** Rows per group when a part reads the group index (kb.group); undefined otherwise. */
  groupRows?: number;
}
