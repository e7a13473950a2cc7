// The tuning database's file (runtime/autotune/db.ts): reading it, atomic writes (temp file, fsync, rename),
// leftovers of killed writers, and the lock file around every read-merge-write.
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  fsyncSync,
  linkSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { makeOutDir, OutPathError } from '../fsout.js';
import {
  entryProblem, errCode, errText, isObj, isStr, j, keyString, normalizeEntry, timeOf, type TuneEntry, TUNING_SCHEMA,
  TuningDbError,
} from './db-entry.js';

/** Temp files of failed writes older than this are removed by the next successful write. */
const STALE_TMP_MS = 60_000;

// ---------------------------------------------------------------------------------------------------------
// File I/O

let beforeRenameHook: ((tmpPath: string) => void) | undefined;

/** Tests only: called after the temp file is written and fsynced, just before it is renamed over the DB. */
export function __setBeforeRenameHookForTests(fn: ((tmpPath: string) => void) | undefined): void {
  beforeRenameHook = fn;
}

export interface Loaded {
  entries: Map<string, TuneEntry>;
  /** Warnings about single entries (skipped for their shape) and stale ones. */
  warnings: string[];
  /** Valid entries of another codegen version, by version. */
  stale: Map<string, number>;
  /** Why the whole file is unusable (not JSON, wrong schema, empty); undefined when it is fine or missing. */
  corrupt?: string;
  missing: boolean;
  /** The text read; undefined when missing. */
  text?: string;
  /** The text is the `known` one: nothing was parsed, entries is empty. */
  unchanged?: boolean;
}

/**
 * Reads the file; keeps valid entries of `version` only. A missing file is empty (`missing`); an unusable
 * file is reported in `corrupt` (nothing is changed here). Throws TuningDbError when the path cannot be read
 * at all (a folder, no permission), and in `strict` mode for a malformed entry.
 */
export function readDb(path: string, version: string, strict: boolean, known?: string): Loaded {
  const out: Loaded = { entries: new Map(), warnings: [], stale: new Map(), missing: false };
  let text: string;
  try {
    const st = statSync(path);
    if (st.isDirectory()) throw new TuningDbError(path, 'is a folder, not a tuning db file');
    // A FIFO or device would block or stream forever.
    if (!st.isFile()) throw new TuningDbError(path, 'is not a regular file');
    const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      if (!fstatSync(fd).isFile()) throw new TuningDbError(path, 'is not a regular file');
      text = readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    if (e instanceof TuningDbError) throw e;
    if (errCode(e) === 'ENOENT') return { ...out, missing: true };
    if (errCode(e) === 'EISDIR') throw new TuningDbError(path, 'is a folder, not a tuning db file');
    if (errCode(e) === 'ENOTDIR') throw new TuningDbError(path, 'a parent of this path is a file, not a folder');
    throw new TuningDbError(path, `cannot read it (${errText(e)})`);
  }
  out.text = text;
  if (known !== undefined && text === known) return { ...out, unchanged: true };
  if (text.trim() === '') return { ...out, corrupt: 'the file is empty' };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return { ...out, corrupt: `not valid JSON (${(e as Error).message})` };
  }
  if (!isObj(doc)) return { ...out, corrupt: `not a ${TUNING_SCHEMA} file (a JSON ${jsonKind(doc)})` };
  if (doc.schema !== TUNING_SCHEMA)
    return { ...out, corrupt: `not a ${TUNING_SCHEMA} file (schema ${JSON.stringify(doc.schema) ?? 'missing'})` };
  if (!isObj(doc.entries)) return { ...out, corrupt: `not a ${TUNING_SCHEMA} file ('entries' is not an object)` };
  for (const [name, raw] of Object.entries(doc.entries)) {
    const problem = entryProblem(raw);
    if (problem) {
      if (strict) throw new TuningDbError(path, `entry ${name}: ${problem}`);
      out.warnings.push(`tuning db ${path}: skipped entry ${name}: ${problem} (it is dropped on the next write)`);
      continue;
    }
    const e = normalizeEntry(raw as TuneEntry);
    if (e.codegenVersion !== version) {
      // stale: ignored, dropped on the next write
      out.stale.set(e.codegenVersion, (out.stale.get(e.codegenVersion) ?? 0) + 1);
      continue;
    }
    const k = keyString(e.key); // the key's own canonical string is authoritative
    const prev = out.entries.get(k);
    if (!prev || timeOf(e) > timeOf(prev)) out.entries.set(k, e);
  }
  return out;
}

function jsonKind(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

function writeAll(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
}

/** Creates the DB's folder and its missing parents one level at a time (never a recursive mkdir). */
export function makeDbDir(path: string): void {
  try {
    makeOutDir(dirname(path), 'tuning db');
  } catch (e) {
    if (e instanceof OutPathError) throw new TuningDbError(path, `cannot create its folder (${e.message})`);
    throw e;
  }
}

/**
 * Atomic replace: temp file in the same directory, fsync, rename over the path, fsync the directory; returns
 * the text written. `stillOurs` is asked just before the rename; false aborts (returns undefined) without
 * touching the DB.
 */
export function writeDbAtomic(
  path: string,
  entries: Map<string, TuneEntry>,
  stillOurs: () => boolean,
  sync: boolean,
): string | undefined {
  const dir = dirname(path);
  // One entry per line: readable, and much faster to write and parse than fully indented JSON.
  const lines = [...entries.keys()].sort().map((k) => `    ${j(k)}: ${j(entries.get(k))}`);
  const body = lines.length ? `\n${lines.join(',\n')}\n  ` : '';
  const text = `{\n  "schema": ${j(TUNING_SCHEMA)},\n  "entries": {${body}}\n}\n`;
  const buf = Buffer.from(text, 'utf8');
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  let renamed = false;
  try {
    let fd: number;
    try {
      fd = openSync(tmp, 'wx', 0o644);
    } catch (e) {
      throw new TuningDbError(path, `cannot write in ${dir} (${errText(e)})`);
    }
    try {
      writeAll(fd, buf);
      if (sync) fsyncSync(fd);
    } catch (e) {
      throw new TuningDbError(path, `cannot write ${tmp} (${errText(e)})`);
    } finally {
      closeSync(fd);
    }
    beforeRenameHook?.(tmp);
    if (!stillOurs()) return undefined;
    try {
      renameSync(tmp, path);
    } catch (e) {
      throw new TuningDbError(path, `cannot replace it (${errText(e)})`);
    }
    renamed = true;
  } finally {
    if (!renamed) {
      try {
        unlinkSync(tmp);
      } catch {
        /* already gone */
      }
    }
  }
  // Make the rename itself durable; not every platform / file system lets a directory be fsynced.
  if (sync) {
    try {
      const dfd = openSync(dir, 'r');
      try {
        fsyncSync(dfd);
      } finally {
        closeSync(dfd);
      }
    } catch {
      /* best effort */
    }
  }
  removeStaleLeftovers(path);
  return text;
}

/**
 * Removes `${path}.*.tmp` files left by killed writers and `${path}.lock.stale-*` files left by killed lock
 * takers, once they are older than STALE_TMP_MS.
 */
function removeStaleLeftovers(path: string): void {
  const dir = dirname(path);
  const prefix = `${basename(path)}.`;
  const stalePrefix = `${basename(path)}.lock.stale-`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  const now = Date.now();
  for (const n of names) {
    if (!(n.startsWith(prefix) && n.endsWith('.tmp')) && !n.startsWith(stalePrefix)) continue;
    const p = join(dir, n);
    try {
      if (now - statSync(p).mtimeMs > STALE_TMP_MS) unlinkSync(p);
    } catch {
      /* raced with another cleaner, or not ours to remove */
    }
  }
}

/** `${path}.corrupt-<UTC time>` (with a counter if that name is taken). */
export function corruptName(path: string): string {
  const t = new Date().toISOString().replace(/[:.]/g, '-');
  for (let i = 0; ; i++) {
    const p = `${path}.corrupt-${t}${i ? `-${i}` : ''}`;
    if (!existsSync(p)) return p;
  }
}

// ---------------------------------------------------------------------------------------------------------
// The lock: `${path}.lock`, created with O_EXCL around every read-merge-write (and around moving a corrupt
// file aside). It holds {pid, host, token, time}. A lock older than LOCK_STALE_MS, or one whose process (on
// this host) is gone, is taken over: renamed to a unique name, checked to still be the one judged stale, and
// removed. The holder checks the lock is still its own just before it renames its file over the DB.

/** A lock older than this is taken over even if its process seems alive (a read-merge-write takes ms). */
export const LOCK_STALE_MS = 10_000;
/** How long a writer waits for the lock before giving up with an error. */
const LOCK_WAIT_MS = LOCK_STALE_MS + 20_000;

interface LockInfo {
  pid: number;
  host: string;
  token: string;
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
const sleepMs = (ms: number) => Atomics.wait(sleepCell, 0, 0, ms);

function readLock(lock: string): { text: string; mtimeMs: number } | undefined {
  try {
    const mtimeMs = statSync(lock).mtimeMs;
    return { text: readFileSync(lock, 'utf8'), mtimeMs };
  } catch (e) {
    if (errCode(e) === 'ENOENT') return undefined;
    throw e;
  }
}

function parseLock(text: string): LockInfo | undefined {
  try {
    const v: unknown = JSON.parse(text);
    if (isObj(v) && Number.isSafeInteger(v.pid) && isStr(v.host) && isStr(v.token)) return v as unknown as LockInfo;
  } catch {
    /* being written, or garbage: judged by its age */
  }
  return undefined;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errCode(e) === 'EPERM'; // exists, owned by someone else
  }
}

/** True when the lock is gone or was stale and has been removed (try to create it again now). */
function takeOverIfStale(lock: string): boolean {
  const seen = readLock(lock);
  if (!seen) return true;
  const info = parseLock(seen.text);
  const old = Date.now() - seen.mtimeMs > LOCK_STALE_MS;
  const dead = info !== undefined && info.host === hostname() && info.pid !== process.pid && !pidAlive(info.pid);
  if (!old && !dead) return false;
  const aside = `${lock}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    renameSync(lock, aside);
  } catch (e) {
    if (errCode(e) === 'ENOENT') return true; // another process took it over first
    throw e;
  }
  const moved = readLock(aside);
  if (moved && moved.text === seen.text && moved.mtimeMs === seen.mtimeMs) {
    unlinkSync(aside);
    return true;
  }
  // Another process had already replaced the stale lock with its own, live one: put that back.
  try {
    linkSync(aside, lock);
  } catch {
    /* someone created a new one meanwhile; that holder's commit check notices */
  }
  unlinkSync(aside);
  return false;
}

/** Runs `fn` holding the DB's lock; `fn` gets a function telling whether the lock is still held. */
export function withLock<T>(path: string, fn: (stillOurs: () => boolean) => T): T {
  const lock = `${path}.lock`;
  const token = `${process.pid}-${randomBytes(8).toString('hex')}`;
  const info = { pid: process.pid, host: hostname(), token, time: new Date().toISOString() };
  const body = Buffer.from(JSON.stringify(info));
  const deadline = Date.now() + LOCK_WAIT_MS;
  let delay = 1;
  for (;;) {
    let fd: number | undefined;
    try {
      fd = openSync(lock, 'wx', 0o644);
    } catch (e) {
      if (errCode(e) !== 'EEXIST') throw new TuningDbError(path, `cannot create the lock file ${lock} (${errText(e)})`);
    }
    if (fd !== undefined) {
      try {
        writeAll(fd, body);
      } finally {
        closeSync(fd);
      }
      break;
    }
    if (takeOverIfStale(lock)) continue;
    if (Date.now() > deadline) {
      const holder = parseLock(readLock(lock)?.text ?? '');
      const who = holder ? ` (held by pid ${holder.pid} on ${holder.host})` : '';
      throw new TuningDbError(path, `the lock ${lock} stayed taken for ${LOCK_WAIT_MS / 1000} s${who}`);
    }
    sleepMs(delay * (0.5 + Math.random()));
    delay = Math.min(delay * 2, 25);
  }
  const stillOurs = () => parseLock(readLock(lock)?.text ?? '')?.token === token;
  try {
    return fn(stillOurs);
  } finally {
    try {
      if (stillOurs()) unlinkSync(lock);
    } catch {
      /* taken over or removed meanwhile */
    }
  }
}
