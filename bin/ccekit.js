#!/usr/bin/env node
// Runs the bundled CLI (npm run bundle → dist/ccekit.mjs) if present, else cli/main.ts through tsx.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const bundle = new URL('../dist/ccekit.mjs', import.meta.url);
if (existsSync(bundle)) {
  await import(bundle.href);
} else {
  const main = fileURLToPath(new URL('../cli/main.ts', import.meta.url));
  const r = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), main, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exitCode = r.status ?? 1;
}
