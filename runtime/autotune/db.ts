// The autotuner's persistent tuning database: one JSON file of measured best schedules, keyed by device,
// kernel, dtype, options and a bucketed problem shape. Entries from another codegen version are stale.
// Writes are atomic (temp file, fsync, rename), done under a lock file, and merge with whatever other
// processes wrote meanwhile. A corrupt file is moved aside (`<path>.corrupt-<time>`), never overwritten.
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
import { homedir, hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { makeOutDir, OutPathError } from '../fsout.js';
import { CODEGEN_VERSION } from '../../codegen/compile.js';
import { checkScheduleShape, type Schedule } from '../../dsl/schedule.js';
import { CceInputError } from '../problem.js';

export interface DeviceKey {
  /** e.g. 'NVIDIA H100 80GB HBM3' */
  name: string;
  /** e.g. 'sm_90a' */
  arch: string;
  /** e.g. '13000' */
  driver: string;
}

/** Already bucketed problem sizes (see bucket()). */
export interface ProblemBucket {
  N: number;
  K: number;
  D: number;
  V: number;
}

export interface TuneKey {
  device: DeviceKey;
  kernel: string;
  dtype: string;
  /** optionsKey() of the kernel's CceOptions. */
  options: string;
  bucket: ProblemBucket;
}

export interface TuneCandidate {
  schedule: Schedule;
  /** null: failed or rejected. */
  ms: number | null;
  note?: string;
}

export interface TuneEntry {
  key: TuneKey;
  codegenVersion: string;
  schedule: Schedule;
  ms: number;
  p20: number;
  p80: number;
  candidates: TuneCandidate[];
  createdAt: string;
}

export const TUNING_SCHEMA = 'ccekit-tuning/1';

/** Temp files of failed writes older than this are removed by the next successful write. */
const STALE_TMP_MS = 60_000;

// ---------------------------------------------------------------------------------------------------------
// Keys

function nextPow2(x: number): number {
  let b = 1;
  while (b < x) b *= 2;
  return b;
}

function checkSize(name: string, x: number): void {
  if (!Number.isSafeInteger(x) || x < 0) throw new RangeError(`bucket: ${name} = ${x} is not a non-negative integer`);
}

/** N, K, D round up to a power of two (K = 0 stays 0); V rounds up to a power of four. */
export function bucket(p: { N: number; K: number; D: number; V: number }): ProblemBucket {
  for (const f of ['N', 'K', 'D', 'V'] as const) checkSize(f, p[f]);
  let V = 1;
  while (V < p.V) V *= 4;
  return { N: nextPow2(p.N), K: p.K === 0 ? 0 : nextPow2(p.K), D: nextPow2(p.D), V };
}

/** The key's known fields only, in a fixed shape (extra properties never change the key). */
function normalizeKey(k: TuneKey): TuneKey {
  return {
    device: { name: k.device.name, arch: k.device.arch, driver: k.device.driver },
    kernel: k.kernel,
    dtype: k.dtype,
    options: k.options,
    bucket: { N: k.bucket.N, K: k.bucket.K, D: k.bucket.D, V: k.bucket.V },
  };
}

const j = JSON.stringify;

/**
 * A stable canonical string of a key: its known fields as JSON with sorted object keys (extra properties
 * never change it); the map key of the file's entries.
 */
export function keyString(k: TuneKey): string {
  const { bucket: b, device: d } = k;
  return (
    `{"bucket":{"D":${j(b.D)},"K":${j(b.K)},"N":${j(b.N)},"V":${j(b.V)}},` +
    `"device":{"arch":${j(d.arch)},"driver":${j(d.driver)},"name":${j(d.name)}},` +
    `"dtype":${j(k.dtype)},"kernel":${j(k.kernel)},"options":${j(k.options)}}`
  );
}

// ---------------------------------------------------------------------------------------------------------
// Validation (of loaded JSON and of put() arguments)

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string';
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function scheduleProblem(s: unknown): string | undefined {
  if (!isObj(s)) return 'schedule is not an object';
  try {
    checkScheduleShape(s as unknown as Schedule);
  } catch (e) {
    return (e as Error).message;
  }
  return undefined;
}

/** Why a value is not a TuneEntry (without its codegenVersion / createdAt when `partial`), or undefined. */
function entryProblem(e: unknown, partial = false): string | undefined {
  if (!isObj(e)) return 'entry is not an object';
  const k = e.key;
  if (!isObj(k)) return 'key is not an object';
  const d = k.device;
  if (!isObj(d) || !isStr(d.name) || !isStr(d.arch) || !isStr(d.driver))
    return 'key.device needs string name, arch, driver';
  for (const f of ['kernel', 'dtype', 'options'] as const) if (!isStr(k[f])) return `key.${f} is not a string`;
  const b = k.bucket;
  if (!isObj(b)) return 'key.bucket is not an object';
  for (const f of ['N', 'K', 'D', 'V'] as const) {
    const x = b[f];
    if (!isNum(x) || !Number.isSafeInteger(x) || x < 0) return `key.bucket.${f} is not a non-negative integer`;
  }
  if (!partial) {
    if (!isStr(e.codegenVersion)) return 'codegenVersion is not a string';
    if (!isStr(e.createdAt)) return 'createdAt is not a string';
  }
  const sp = scheduleProblem(e.schedule);
  if (sp) return sp;
  for (const f of ['ms', 'p20', 'p80'] as const) if (!isNum(e[f])) return `${f} is not a finite number`;
  if (!Array.isArray(e.candidates)) return 'candidates is not an array';
  for (const [i, c] of e.candidates.entries()) {
    if (!isObj(c) || !isObj(c.schedule)) return `candidates[${i}] has no schedule object`;
    if (c.ms !== null && !isNum(c.ms)) return `candidates[${i}].ms is neither a finite number nor null`;
    if (c.note !== undefined && !isStr(c.note)) return `candidates[${i}].note is not a string`;
  }
  return undefined;
}

/** A copy holding only the known fields (the stored form). */
function normalizeEntry(e: TuneEntry): TuneEntry {
  return {
    key: normalizeKey(e.key),
    codegenVersion: e.codegenVersion,
    schedule: { ...e.schedule },
    ms: e.ms,
    p20: e.p20,
    p80: e.p80,
    candidates: e.candidates.map((c) => ({
      schedule: { ...c.schedule },
      ms: c.ms,
      ...(c.note !== undefined ? { note: c.note } : {}),
    })),
    createdAt: e.createdAt,
  };
}

const clone = <T>(v: T): T => structuredClone(v);

function timeOf(e: TuneEntry): number {
  const t = Date.parse(e.createdAt);
  return Number.isNaN(t) ? -Infinity : t;
}

// ---------------------------------------------------------------------------------------------------------
// Errors

/**
 * A tuning DB that cannot be used: a folder at its path, an unreadable file, a lock that never frees, a
 * failed write; in strict mode (TuningDb.readStrict) also a missing, truncated or malformed file. One line
 * that names the path. A CceInputError (argument 'tuning db'), so the CLI prints it as a usage-level error.
 */
export class TuningDbError extends CceInputError {
  readonly path: string;
  /** The message without its `tuning db PATH: ` prefix. */
  readonly detail: string;
  constructor(path: string, detail: string) {
    super('tuning db', `tuning db ${path}: ${detail}`);
    this.name = 'TuningDbError';
    this.path = path;
    this.detail = detail;
  }
}

const errCode = (e: unknown): string => (e as NodeJS.ErrnoException)?.code ?? '';
const errText = (e: unknown): string => errCode(e) || (e as Error).message;

// ---------------------------------------------------------------------------------------------------------
// File I/O

let beforeRenameHook: ((tmpPath: string) => void) | undefined;

/** Tests only: called after the temp file is written and fsynced, just before it is renamed over the DB. */
export function __setBeforeRenameHookForTests(fn: ((tmpPath: string) => void) | undefined): void {
  beforeRenameHook = fn;
}

interface Loaded {
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
function readDb(path: string, version: string, strict: boolean, known?: string): Loaded {
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
function makeDbDir(path: string): void {
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
function writeDbAtomic(
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
function corruptName(path: string): string {
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
function withLock<T>(path: string, fn: (stillOurs: () => boolean) => T): T {
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

// ---------------------------------------------------------------------------------------------------------

export interface TuningDbOptions {
  /** Entries of another version are stale (ignored); default the current CODEGEN_VERSION. */
  codegenVersion?: string;
  /**
   * Strict reading (what `emit --target torch --db FILE` wants): a missing, empty, truncated, non-JSON or
   * wrong-schema file, or a malformed entry, throws TuningDbError; nothing is moved or rewritten.
   */
  strict?: boolean;
  /**
   * fsync the new file and its folder on every put (default true). False trades durability across a power
   * loss for speed (scratch DBs, tests); atomicity and the lock are the same either way.
   */
  sync?: boolean;
}

export class TuningDb {
  readonly path: string;
  readonly codegenVersion: string;
  /**
   * Warnings collected while loading (corrupt file moved aside, skipped entries, stale entries), and while
   * re-reading before writes; each distinct message once. takeWarnings() hands out the ones not yet taken.
   */
  readonly warnings: string[] = [];
  private taken = 0;
  private map: Map<string, TuneEntry>;
  private readonly sync: boolean;
  /** The file's text that `map` reflects (read or written last): a put finding it unchanged skips parsing. */
  private known: string | undefined;

  constructor(path: string, opts: TuningDbOptions = {}) {
    this.path = resolve(path);
    this.codegenVersion = opts.codegenVersion ?? CODEGEN_VERSION;
    this.sync = opts.sync ?? true;
    let loaded = readDb(this.path, this.codegenVersion, !!opts.strict);
    if (opts.strict && loaded.missing) throw new TuningDbError(this.path, 'no such file');
    if (opts.strict && loaded.corrupt) throw new TuningDbError(this.path, loaded.corrupt);
    if (loaded.corrupt) {
      try {
        loaded = withLock(this.path, () => this.readRecovering());
      } catch (e) {
        if (!(e instanceof TuningDbError)) throw e;
        // Reading goes on with an empty db (put() fails the same way, loudly).
        this.warn(`tuning db ${this.path}: ${loaded.corrupt}; using an empty db (${e.detail})`);
        loaded = { ...loaded, corrupt: undefined };
      }
    }
    this.map = loaded.entries;
    this.known = loaded.text;
    for (const w of loaded.warnings) this.warn(w);
    if (loaded.stale.size) {
      const n = [...loaded.stale.values()].reduce((a, b) => a + b, 0);
      const versions = [...loaded.stale.keys()].sort().join(', ');
      this.warn(`tuning db ${this.path}: ignored ${n} entr${n === 1 ? 'y' : 'ies'} tuned by codegen version ` +
        `${versions} (this is ${this.codegenVersion}); \`ccekit tune\` measures them again`);
    }
  }

  /** Strict open: see TuningDbOptions.strict. */
  static readStrict(path: string, opts: Omit<TuningDbOptions, 'strict'> = {}): TuningDb {
    return new TuningDb(path, { ...opts, strict: true });
  }

  /** $CCEKIT_CACHE/tuning.json, else ~/.cache/ccekit/tuning.json. */
  static defaultPath(): string {
    const dir = process.env.CCEKIT_CACHE;
    return dir ? join(dir, 'tuning.json') : join(homedir(), '.cache', 'ccekit', 'tuning.json');
  }

  /** The warnings not handed out before (for printing each once). */
  takeWarnings(): string[] {
    const out = this.warnings.slice(this.taken);
    this.taken = this.warnings.length;
    return out;
  }

  private warn(w: string): void {
    if (!this.warnings.includes(w)) this.warnings.push(w);
  }

  /**
   * Under the lock: reads the file; an unusable one is renamed to `${path}.corrupt-<time>` (kept for the
   * user, never overwritten) with a warning, and the db starts empty.
   */
  private readRecovering(known?: string): Loaded {
    const disk = readDb(this.path, this.codegenVersion, false, known);
    if (!disk.corrupt) return disk;
    const aside = corruptName(this.path);
    try {
      renameSync(this.path, aside);
    } catch (e) {
      throw new TuningDbError(this.path, `${disk.corrupt}; cannot move it aside to ${aside} (${errText(e)})`);
    }
    this.warn(`tuning db ${this.path}: ${disk.corrupt}; moved it to ${aside} and started an empty db`);
    return { ...disk, corrupt: undefined, text: undefined };
  }

  /** The entry of a key; undefined when missing, stale (another codegen version) or malformed. */
  get(k: TuneKey): TuneEntry | undefined {
    const e = this.map.get(keyString(k));
    if (!e || e.codegenVersion !== this.codegenVersion || entryProblem(e)) return undefined;
    return clone(e);
  }

  /**
   * Stores an entry (stamped with this db's codegen version and the current time) in memory, then, holding
   * the file's lock, rewrites the file atomically merged with its current content: entries other processes
   * wrote meanwhile are kept, the newer of two entries of one key wins, stale entries are dropped, a corrupt
   * file is first moved aside. Throws on a malformed entry (before touching anything) or TuningDbError when
   * the file cannot be written (memory keeps the entry).
   */
  put(e: Omit<TuneEntry, 'codegenVersion' | 'createdAt'>): void {
    const problem = entryProblem(e, true);
    if (problem) throw new TypeError(`TuningDb.put: ${problem}`);
    const b = e.key.bucket;
    const bb = bucket(b);
    if (bb.N !== b.N || bb.K !== b.K || bb.D !== b.D || bb.V !== b.V) {
      const got = JSON.stringify(b);
      throw new RangeError(`TuningDb.put: key.bucket ${got} is not bucketed (bucket() gives ${JSON.stringify(bb)})`);
    }
    const entry = normalizeEntry({
      ...(e as TuneEntry),
      codegenVersion: this.codegenVersion,
      createdAt: new Date().toISOString(),
    });
    const k = keyString(entry.key);
    this.map.set(k, entry);
    makeDbDir(this.path);
    for (let attempt = 1; ; attempt++) {
      const done = withLock(this.path, (stillOurs) => {
        // Nobody replaced the file since this db last read or wrote it: memory already holds its entries.
        const disk = this.readRecovering(this.known);
        for (const w of disk.warnings) this.warn(w);
        const merged = disk.unchanged ? new Map(this.map) : disk.entries;
        if (!disk.unchanged) {
          for (const [mk, mine] of this.map) {
            const theirs = merged.get(mk);
            if (mk === k || !theirs || timeOf(mine) > timeOf(theirs)) merged.set(mk, mine);
          }
        }
        const written = writeDbAtomic(this.path, merged, stillOurs, this.sync);
        if (written === undefined) return false; // the lock was lost (taken over): redo
        this.map = merged;
        this.known = written;
        return true;
      });
      if (done) return;
      if (attempt === 5) throw new TuningDbError(this.path, `its lock ${this.path}.lock was taken over 5 times`);
    }
  }

  /** All current (non-stale) entries, sorted by key string. */
  entries(): TuneEntry[] {
    return [...this.map.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, e]) => e)
      .filter((e) => e.codegenVersion === this.codegenVersion)
      .map(clone);
  }
}
