// Bad input to the emitted PyTorch package's cce_minus_loss, every argument: each case must end in one ValueError
// whose message starts with the argument's name, within 2 s and 500 MB, before anything large is allocated; the
// valid controls next to them must compute what the package's PyTorch reference computes. One python process
// (test/support/bad_input_torch.py) runs every case on the CPU path, plus the pure part of the CUDA path's check of
// its kernels against the call (hidden size D, share_rows, dtype). Needs /usr/bin/python3 with torch (CI: required).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { findTorchPython, must, skipMissing } from './support/toolchains.js';
import { TORCH_PYTHON, emitTorchPackageDir } from './support/torch_package.js';

interface Case {
  arg: string;
  what: string;
  error: string | null;
  message: string | null;
  ms: number;
  peakGrowthMB: number;
}
interface Control {
  what: string;
  ok: boolean;
  error: string | null;
  message: string | null;
}

const ARGUMENTS = ['e', 'c', 'targets', 'num_negatives', 'negatives', 'item_probs', 'ignore_index', 'reduction', 'seed',
  'share_rows', 'deterministic', 'dc_by_item'];

const python = findTorchPython();

describe.skipIf(skipMissing(TORCH_PYTHON, !!python))('PyTorch package: bad input', () => {
  let cases: Case[] = [];
  let controls: Control[] = [];
  beforeAll(() => {
    const py = must(TORCH_PYTHON, python);
    const dir = emitTorchPackageDir();
    const script = join(__dirname, 'support', 'bad_input_torch.py');
    const r = spawnSync(py, [script, dir], { encoding: 'utf8', timeout: 50_000 });
    if (r.status !== 0) throw new Error(`bad_input_torch.py exited ${r.status ?? r.signal}:\n${r.stderr}`);
    ({ cases, controls } = JSON.parse(r.stdout) as { cases: Case[]; controls: Control[] });
  });

  it('covers every argument of cce_minus_loss, at least 40 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(40);
    expect([...new Set(cases.map((c) => c.arg))].sort()).toEqual([...ARGUMENTS].sort());
    expect(new Set(cases.map((c) => `${c.arg}|${c.what}`)).size).toBe(cases.length);
  });

  it('every case: one ValueError naming its argument, within 2 s and 500 MB', () => {
    const wrong = cases.flatMap((c) => {
      const why = [
        c.error !== 'ValueError' ? `raised ${c.error ?? 'nothing'}` : '',
        c.error === 'ValueError' && !c.message!.startsWith(`${c.arg}: `) ? 'names another argument' : '',
        c.ms >= 2000 ? `took ${c.ms.toFixed(0)} ms` : '',
        c.peakGrowthMB >= 500 ? `grew the peak memory by ${c.peakGrowthMB.toFixed(0)} MB` : '',
      ].filter(Boolean);
      return why.length ? [`${c.arg} (${c.what}): ${why.join(', ')}: ${c.message ?? ''}`] : [];
    });
    expect(wrong).toEqual([]);
  });

  it('messages say what is wrong: the odd device, D = 0, the seed, dc_by_item on the CPU path', () => {
    const message = (arg: string, what: string) => cases.find((c) => c.arg === arg && c.what === what)?.message;
    const device = (arg: string, others: string) => message(arg, `on another device than ${others}`);
    expect(device('e', 'c and targets')).toMatch(/^e: is on meta while c and targets are on cpu/);
    expect(device('c', 'e and targets')).toMatch(/^c: is on meta while e and targets are on cpu/);
    expect(device('negatives', 'e, c and targets')).toMatch(/^negatives: is on meta while e, c and targets/);
    expect(message('e', 'hidden size D = 0')).toBe('e: hidden size D = 0');
    expect(message('seed', 'str')).toMatch(/^seed: must be None or an int in \[0, 2\*\*64\), got 'abc'/);
    expect(message('dc_by_item', "True with reduction='none'")).toMatch(/^dc_by_item: .*reduction='none'/);
    expect(message('num_negatives', 'N·K past 32-bit offsets')).toMatch(/^num_negatives: N·K = 19327352832 elements/);
    expect(message('e', 'CUDA: D no emitted schedule serves')).toMatch(/^e: hidden size D = 65 .*--d-values incl/);
    expect(message('e', 'CUDA: share_rows with a D that no vector width divides')).toMatch(/D % 4 == 0/);
  });

  it('valid controls next to the bad cases compute what the reference computes', () => {
    expect(controls.length).toBeGreaterThanOrEqual(10);
    const failed = controls.filter((c) => !c.ok);
    expect(failed.map((c) => `${c.what}: ${c.error ?? 'wrong result'} ${c.message ?? ''}`)).toEqual([]);
  });
});
