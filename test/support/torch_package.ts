// The emitted PyTorch package for the tests that drive it with a python3 that imports torch (Debian's
// /usr/bin/python3 with python3-torch): the package written into a fresh temporary folder.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TorchPackageOptions, emitTorchPackage } from '../../targets/torch/package.js';
import { writeFiles } from './toolchains.js';

/** What the package's tests need, in the skip line. */
export const TORCH_PYTHON = 'python3 with torch (Debian python3-torch)';

/** The package (f32 kernels for D = 64 unless told otherwise) in a new temporary folder; returns the folder. */
export function emitTorchPackageDir(o: TorchPackageOptions = { dValues: [64], dtypes: ['f32'] }): string {
  const dir = mkdtempSync(join(tmpdir(), 'ccekit-torch-'));
  writeFiles(dir, emitTorchPackage(o));
  return dir;
}
