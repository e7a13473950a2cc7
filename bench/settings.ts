// Benchmark settings (runtime/presets.ts) and anchors measured by others.
import { type BenchSetting, SETTINGS } from '../runtime/presets.js';

export { type BenchSetting, SETTINGS, settingByName } from '../runtime/presets.js';

export interface Anchor {
  /** The paper's Triton CCE- kernel. */
  paper: { ms: number; mib: number };
  /** PyTorch CE- as the paper measured it; null where it did not fit (needs > 60 GB). */
  torchCeMinus: { ms: number; mib: number } | null;
  /** Apple's Cut Cross-Entropy over the full catalog (full CE, not CE-). */
  appleCce: { ms: number };
}

/** Anchors measured on an H100 by others (fp16, fwd+bwd): the paper's Triton CCE- kernel, PyTorch CE-, Apple's Cut Cross-Entropy full CE. ms and extra MiB; null where not given. */
export const ANCHORS: Record<string, Anchor> = {
  beauty: { paper: { ms: 24.7, mib: 256 }, torchCeMinus: { ms: 36.1, mib: 16416 }, appleCce: { ms: 99.6 } },
  ml20m: { paper: { ms: 71.0, mib: 1026 }, torchCeMinus: null, appleCce: { ms: 34.3 } },
  megamarket: { paper: { ms: 13.7, mib: 891 }, torchCeMinus: { ms: 19.7, mib: 8208 }, appleCce: { ms: 344 } },
  zvuk: { paper: { ms: 403, mib: 4098 }, torchCeMinus: null, appleCce: { ms: 1603 } },
  'small-d': { paper: { ms: 11.6, mib: 513 }, torchCeMinus: { ms: 41.0, mib: 8256 }, appleCce: { ms: 101 } },
};

export interface BenchRow {
  impl: string;
  setting: string;
  N: number;
  V: number;
  K: number;
  D: number;
  dtype: string;
  ms: number | null;
  p20?: number;
  p80?: number;
  fwd_ms?: number;
  bwd_ms?: number;
  peak_mib: number | null;
  card: string;
  note?: string;
  schedule?: unknown;
}

/** The anchors as BenchRows (impl 'paper-triton (anchor)', 'torch-ce-minus (anchor)', 'apple-cce-full (anchor)'), fp16, card 'H100 (anchor)'. */
export function anchorRows(settings: BenchSetting[] = SETTINGS): BenchRow[] {
  const rows: BenchRow[] = [];
  for (const s of settings) {
    const a = ANCHORS[s.name];
    if (!a) continue;
    const base = { setting: s.name, N: s.N, V: s.V, K: s.K, D: s.D, dtype: 'f16', card: 'H100 (anchor)' };
    rows.push({ ...base, impl: 'paper-triton (anchor)', ms: a.paper.ms, peak_mib: a.paper.mib });
    rows.push(
      a.torchCeMinus
        ? { ...base, impl: 'torch-ce-minus (anchor)', ms: a.torchCeMinus.ms, peak_mib: a.torchCeMinus.mib }
        : { ...base, impl: 'torch-ce-minus (anchor)', ms: null, peak_mib: null, note: 'needs > 60 GB' },
    );
    rows.push({ ...base, impl: 'apple-cce-full (anchor)', ms: a.appleCce.ms, peak_mib: null, note: 'full-catalog CE' });
  }
  return rows;
}
