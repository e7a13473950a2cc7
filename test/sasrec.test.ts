// The SASRec example (examples/sasrec/train.py) as a user runs it: one-epoch CPU smoke runs per loss on a
// 200-user slice of the Beauty data (and for cce-minus per negatives mode and objective: in-batch, mixed, shared;
// the masked objective through positions=), and the loss self-check (PyTorch CE- against a float64 loop).
// Needs a python3 with torch (Debian python3-torch) and the Beauty data (../shared/data beside the repository, or
// the folder $CCEKIT_DATA): skipped without them, failed instead when CI is set (toolchains.ts skipMissing).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { TORCH_PYTHON, findTorchPython, hidden, needs } from './support/toolchains.js';

/** The repository root, from this file's location (not the cwd): the children run there too. */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TORCH = findTorchPython();
const PYTHON = TORCH ?? 'python3';
const TRAIN = join(ROOT, 'examples', 'sasrec', 'train.py');
const DATA = resolve(ROOT, process.env.CCEKIT_DATA ?? join('..', 'shared', 'data'), 'beauty.txt');
const PACKAGE = 'out/torch';
const DATA_WHAT = `the SASRec data ${DATA} (../shared/data beside the repository, or $CCEKIT_DATA)`;
const hasData = !hidden('data') && existsSync(DATA);
const hasPackage = existsSync(join(ROOT, PACKAGE, 'ccekit_torch', '__init__.py'));

const tmp = mkdtempSync(join(tmpdir(), 'ccekit-sasrec-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// out/torch when it was emitted, else one fresh emission (ccekit emit --target torch) into a temp folder.
let emitted: Promise<string> | undefined;
function ccePackage(): Promise<string> {
  emitted ??= (async () => {
    if (hasPackage) return PACKAGE;
    const { emitTorchPackage } = await import('../packages/torch/package.js');
    const pkg = join(tmp, 'torch');
    for (const [name, text] of emitTorchPackage({ dValues: [16], dtypes: ['f32'] })) {
      mkdirSync(dirname(join(pkg, name)), { recursive: true });
      writeFileSync(join(pkg, name), text);
    }
    return pkg;
  })();
  return emitted;
}

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function python(...args: string[]): Promise<Result> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, args, { cwd: ROOT, env: { ...process.env, OMP_NUM_THREADS: '2' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: performance.now() - t0 }));
  });
}

interface Report {
  args: { loss: string; negatives_mode: string; objective: string };
  data: { users: number; items: number };
  epochs: { epoch: number; loss: number; time_s: number; 'val_ndcg@10': number; 'val_hr@10': number }[];
  best_epoch: number;
  test: { 'ndcg@10': number; 'hr@10': number; users: number };
  device: string;
  torch_version: string;
}

const TINY = ['--hidden', '16', '--blocks', '1', '--maxlen', '20', '--epochs', '1', '--batch-size', '64', '--negatives', '32'];

let runs = 0;

async function smoke(loss: string, ...extra: string[]): Promise<Report> {
  const out = join(tmp, `${loss}-${runs++}.json`);
  const r = await python(TRAIN, '--data', DATA, '--max-users', '200', '--loss', loss, '--device', 'cpu', ...TINY, '--out', out, ...extra);
  expect(r.code, r.stderr).toBe(0);
  const report = JSON.parse(readFileSync(out, 'utf8')) as Report;
  expect(report.args.loss).toBe(loss);
  expect(report.device).toBe('cpu');
  expect(report.data.users).toBe(200);
  expect(report.epochs).toHaveLength(1);
  const [e] = report.epochs;
  expect(Number.isFinite(e!.loss)).toBe(true);
  expect(e!.loss).toBeGreaterThan(0);
  for (const m of [e!['val_ndcg@10'], e!['val_hr@10'], report.test['ndcg@10'], report.test['hr@10']]) {
    expect(m).toBeGreaterThanOrEqual(0);
    expect(m).toBeLessThanOrEqual(1);
  }
  expect(e!['val_ndcg@10']).toBeLessThanOrEqual(e!['val_hr@10']);
  expect(report.best_epoch).toBe(1);
  expect(report.test.users).toBe(200);
  return report;
}

describe('SASRec example', () => {
  needs(TORCH_PYTHON, !!TORCH);

  it('self-check: PyTorch CE- equals a float64 loop (rejected negatives, all-rejected rows), BCE formula', async () => {
    const r = await python(TRAIN, '--self-check', '--ccekit-package', PACKAGE);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ce-minus N=7 V=5 .* ok$/m);
    expect(r.stdout).toMatch(/^bce: .* ok$/m);
    expect(r.stdout).toMatch(/^train step order .* ok$/m);
    if (hasPackage) expect(r.stdout).toMatch(/^cce-minus \(ccekit_torch, in-batch, positions\): .* ok$/m);
    expect(r.stdout).toContain('self-check ok');
  });

  describe('one-epoch CPU smoke runs on 200 users of the Beauty data', () => {
    needs(DATA_WHAT, hasData);

    it.concurrent.each(['ce', 'ce-minus', 'bce'])('--loss %s', async (loss) => {
      await smoke(loss);
    });

    it('--loss ce-minus --objective masked (the plain-PyTorch baseline, E[positions])', async () => {
      const report = await smoke('ce-minus', '--objective', 'masked');
      expect(report.args.objective).toBe('masked');
    });

    it('--loss cce-minus (the emitted ccekit_torch package)', async () => {
      await smoke('cce-minus', '--ccekit-package', await ccePackage());
    });

    // Each mode once and the masked objective twice (positions= with in-batch and with drawn negatives).
    it.concurrent.each([['in-batch', 'masked'], ['mixed', 'next'], ['shared', 'masked']])('--loss cce-minus --negatives-mode %s --objective %s', async (mode, objective) => {
      const report = await smoke('cce-minus', '--ccekit-package', await ccePackage(), '--negatives-mode', mode,
        '--objective', objective, '--mask-prob', '0.3');
      expect(report.args.negatives_mode).toBe(mode);
      expect(report.args.objective).toBe(objective);
    });

    it('under torch.distributed: 2 ranks (gloo, the environment torchrun sets), DDP, rank 0 reports', async () => {
      const out = join(tmp, 'ddp.json');
      const launcher = join(ROOT, 'test', 'support', 'sasrec_ddp.py');
      const r = await python(launcher, '2', '--data', DATA, '--max-users', '200', '--loss', 'cce-minus', '--device',
        'cpu', ...TINY, '--ccekit-package', await ccePackage(), '--out', out);
      expect(r.code, r.stderr).toBe(0);
      const report = JSON.parse(readFileSync(out, 'utf8')) as Report & { world_size: number };
      expect(report.world_size).toBe(2);
      expect(Number.isFinite(report.epochs[0]!.loss)).toBe(true);
      expect(report.test.users).toBe(200);
    });

    it('--negatives-mode other than per-row with a plain-PyTorch loss is refused', async () => {
      const r = await python(TRAIN, '--data', DATA, '--max-users', '20', '--loss', 'ce-minus', '--device', 'cpu', ...TINY,
        '--negatives-mode', 'mixed');
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('--negatives-mode mixed applies to --loss cce-minus');
      expect(r.stderr).not.toMatch(/Traceback/);
    });

    it('--loss cce-minus without the package fails with a clear message', async () => {
      const missing = join(tmp, 'no-package');
      const r = await python(TRAIN, '--data', DATA, '--max-users', '20', '--loss', 'cce-minus', '--device', 'cpu', ...TINY, '--ccekit-package', missing);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('needs the ccekit torch package');
      expect(r.stderr).not.toMatch(/Traceback/);
    });
  });
});
