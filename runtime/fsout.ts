// Output paths (the CLI's --out DIR and --out FILE, the tuning DB's folder): folders are created one level at a
// time, walking the parents ourselves. Node's recursive mkdirSync loops forever on a path under /proc (ENOENT
// from a parent that exists); here /proc, /sys, read-only folders and a file in the way each give one error
// naming the flag.
import { closeSync, mkdirSync, openSync, rmdirSync, statSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';

/** A path given to an output flag that cannot be used; its message names the flag and the path. */
export class OutPathError extends Error {
  constructor(
    readonly flag: string,
    readonly path: string,
    detail: string,
  ) {
    super(`${flag} ${path}: ${detail}`);
    this.name = 'OutPathError';
  }
}

const code = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? '';

function reason(e: unknown, parent: string): string {
  switch (code(e)) {
    case 'EACCES':
    case 'EPERM':
      return `permission denied in ${parent}`;
    case 'EROFS':
      return `${parent} is on a read-only file system`;
    case 'ENOENT':
      // The parent exists (we just checked it), yet the kernel says it does not: /proc and similar.
      return `${parent} does not accept new files or folders`;
    case 'ENOTDIR':
      return `${parent} is not a folder`;
    case 'ENOSPC':
      return 'no space left on the device';
    default:
      return (e as Error).message;
  }
}

/** What is at `p`: a folder, something else, or nothing (ENOENT; ENOTDIR: a parent is not a folder). */
function kind(p: string): 'dir' | 'other' | 'none' {
  try {
    return statSync(p).isDirectory() ? 'dir' : 'other';
  } catch (e) {
    if (code(e) === 'ENOENT') return 'none';
    if (code(e) === 'ENOTDIR') return 'other';
    throw e;
  }
}

/** The folders from the root down to `abs`, each with what is there now, up to the first that is not a folder. */
function chain(abs: string, flag: string, path: string): { p: string; k: 'dir' | 'other' | 'none' }[] {
  const up: string[] = [];
  for (let p = abs; ; p = dirname(p)) {
    up.push(p);
    if (dirname(p) === p) break;
  }
  const out: { p: string; k: 'dir' | 'other' | 'none' }[] = [];
  for (const p of up.reverse()) {
    let k: 'dir' | 'other' | 'none';
    try {
      k = kind(p);
    } catch (e) {
      throw new OutPathError(flag, path, `cannot look at ${p} (${code(e) || (e as Error).message})`);
    }
    out.push({ p, k });
    if (k !== 'dir') break;
  }
  return out;
}

function inTheWay(flag: string, path: string, at: string, abs: string): OutPathError {
  return new OutPathError(flag, path, at === abs ? 'exists and is not a folder' : `${at} is a file, not a folder`);
}

/**
 * Checks, creating nothing, that folder `dir` exists or can be created: every existing part is a folder and
 * the deepest existing one lets a folder be made in it (probed with a folder made and removed at once).
 * Errors name `flag` and `path` (the path as given: the folder itself or a file in it).
 */
function checkDir(dir: string, flag: string, path: string): void {
  const c = chain(dir, flag, path);
  const last = c[c.length - 1]!;
  if (last.k === 'other') throw inTheWay(flag, path, last.p, resolve(path));
  const base = last.k === 'dir' ? last.p : c[c.length - 2]!.p;
  const probe = join(base, `.ccekit-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    mkdirSync(probe);
  } catch (e) {
    const what = last.k === 'dir' ? `write into ${base}` : `create ${last.p}`;
    throw new OutPathError(flag, path, `cannot ${what}: ${reason(e, base)}`);
  }
  try {
    rmdirSync(probe);
  } catch {
    /* removed by someone else */
  }
}

/**
 * Checks, creating nothing, that folder `path` exists or can be created and written into; errors name `flag`
 * and `shown` (the value the user gave, when `path` is a folder inside it).
 */
export function checkOutDir(path: string, flag: string, shown = path): void {
  checkDir(resolve(path), flag, shown);
}

/** Checks, creating nothing, that file `path` can be written: not a folder, its folder exists or can be made. */
export function checkOutFile(path: string, flag: string): void {
  const abs = resolve(path);
  if (kind(abs) === 'dir') throw new OutPathError(flag, path, 'is a folder, not a file');
  checkDir(dirname(abs), flag, path);
}

/** Creates folder `dir` and its missing parents, one level at a time; errors name `flag` and `path`. */
function makeDir(dir: string, flag: string, path: string): void {
  const c = chain(dir, flag, path);
  const last = c[c.length - 1]!;
  if (last.k === 'other') throw inTheWay(flag, path, last.p, resolve(path));
  if (last.k === 'dir') return;
  // last.p is the first missing folder: make it and every folder below it, down to dir.
  const missing: string[] = [];
  for (let p = dir; p !== dirname(last.p); p = dirname(p)) missing.push(p);
  for (const p of missing.reverse()) {
    try {
      mkdirSync(p);
    } catch (e) {
      if (code(e) === 'EEXIST' && kind(p) === 'dir') continue; // made by another process meanwhile
      if (code(e) === 'EEXIST') throw inTheWay(flag, path, p, resolve(path));
      throw new OutPathError(flag, path, `cannot create ${p}: ${reason(e, dirname(p))}`);
    }
  }
}

/** Creates folder `path` and its missing parents (never a recursive mkdir); errors name the flag. */
export function makeOutDir(path: string, flag: string): void {
  makeDir(resolve(path), flag, path);
}

/**
 * Writes `text` to file `file` (its folders made as needed); errors name `flag` and `path` (what the user
 * gave: the file itself, or the --out folder it goes into).
 */
export function writeOutFile(file: string, text: string, flag: string, path = file): void {
  const abs = resolve(file);
  if (kind(abs) === 'dir') throw new OutPathError(flag, path, `${file} is a folder`);
  makeDir(dirname(abs), flag, path);
  let fd: number;
  try {
    fd = openSync(abs, 'w');
  } catch (e) {
    throw new OutPathError(flag, path, `cannot write ${file}: ${reason(e, dirname(abs))}`);
  }
  try {
    const buf = Buffer.from(text, 'utf8');
    for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
  } catch (e) {
    throw new OutPathError(flag, path, `cannot write ${file}: ${reason(e, dirname(abs))}`);
  } finally {
    closeSync(fd);
  }
}
