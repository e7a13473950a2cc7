#!/usr/bin/env node
// The source-shape check of CI: no line over MAX_CHARS characters (Unicode code points) and no file over
// MAX_LINES lines, in the .ts files under dsl, codegen, targets, runtime and cli and the .ts and .py files
// under packages. The files are git's tracked ones plus untracked ones git does not ignore (a new file is
// checked before it is committed); without git, a walk of the folders (node_modules and dot folders skipped).
// Prints file:line for every long line and file for every long file; exits 1 when there is any.
// Usage: node scripts/check-lines.mjs [--max-chars N] [--max-lines N]
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TS = ['.ts'];
const DIRS = { dsl: TS, codegen: TS, targets: TS, runtime: TS, cli: TS, packages: ['.ts', '.py'] };

function option(name, fallback) {
  const at = process.argv.indexOf(name);
  if (at < 0) return fallback;
  const v = Number(process.argv[at + 1]);
  if (!Number.isSafeInteger(v) || v < 1) {
    console.error(`check-lines: ${name} needs a positive integer, got ${JSON.stringify(process.argv[at + 1])}`);
    process.exit(2);
  }
  return v;
}
const MAX_CHARS = option('--max-chars', 120);
const MAX_LINES = option('--max-lines', 400);

const wanted = (path) => {
  const [top] = path.split('/');
  const exts = DIRS[top];
  return exts !== undefined && exts.some((e) => path.endsWith(e));
};

function gitFiles() {
  try {
    const args = ['ls-files', '-z', '--cached', '--others', '--exclude-standard', '--', ...Object.keys(DIRS)];
    const out = execFileSync('git', args, {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      maxBuffer: 64 << 20,
    });
    return [...new Set(out.split('\0').filter(Boolean))];
  } catch {
    return undefined;
  }
}

function walk(dir, out) {
  let names;
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    if (n === 'node_modules' || n.startsWith('.')) continue;
    const p = join(dir, n);
    if (statSync(p).isDirectory()) walk(p, out);
    else out.push(relative(ROOT, p).split(sep).join('/'));
  }
  return out;
}

const files = (gitFiles() ?? Object.keys(DIRS).flatMap((d) => walk(join(ROOT, d), []))).filter(wanted).sort();
const problems = [];
for (const f of files) {
  let text;
  try {
    text = readFileSync(join(ROOT, f), 'utf8');
  } catch {
    continue; // deleted in the working tree but still in the index
  }
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  lines.forEach((line, i) => {
    const n = [...line.replace(/\r$/, '')].length;
    if (n > MAX_CHARS) problems.push(`${f}:${i + 1}: ${n} characters (at most ${MAX_CHARS})`);
  });
  if (lines.length > MAX_LINES) problems.push(`${f}: ${lines.length} lines (at most ${MAX_LINES})`);
}

if (problems.length) {
  console.error(problems.join('\n'));
  console.error(`check-lines: ${problems.length} problem(s) in ${files.length} files`);
  process.exit(1);
}
console.log(`check-lines: ${files.length} files, none over ${MAX_CHARS} characters a line or ${MAX_LINES} lines`);
