// Benchmark settings: dataset shapes of CCE- for sequential recommenders (N rows = batch x positions, V catalog
// size, K negatives per row, D embedding width), read by the CLI, the tuner and bench/.

export interface BenchSetting {
  name: string;
  N: number;
  V: number;
  K: number;
  D: number;
}

export const SETTINGS: BenchSetting[] = [
  { name: 'beauty', N: 32768, V: 176450, K: 511, D: 256 },
  { name: 'ml20m', N: 131072, V: 15405, K: 511, D: 256 },
  { name: 'megamarket', N: 32768, V: 1661327, K: 255, D: 256 },
  { name: 'zvuk', N: 131072, V: 893022, K: 2047, D: 256 },
  { name: 'small-d', N: 65536, V: 100000, K: 511, D: 64 },
];

export function settingByName(name: string): BenchSetting | undefined {
  return SETTINGS.find((s) => s.name === name);
}
