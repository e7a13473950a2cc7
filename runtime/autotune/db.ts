// The autotuner's persistent tuning database: one JSON file of measured best schedules, keyed by device,
// kernel, dtype, options and a bucketed problem shape. Entries from another codegen version are stale.
// Writes are atomic (temp file, fsync, rename) and merge with whatever other processes wrote meanwhile.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { CODEGEN_VERSION } from '../../codegen/compile.js';
import { checkScheduleShape, type Schedule } from '../../dsl/schedule.js';

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

function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  const fields = Object.keys(o)
    .filter((f) => o[f] !== undefined)
    .sort()
    .map((f) => `${JSON.stringify(f)}:${canonicalJson(o[f])}`);
  return `{${fields.join(',')}}`;
}

/** A stable canonical string of a key (sorted object keys); the map key of the file's entries. */
export function keyString(k: TuneKey): string {
  return canonicalJson(normalizeKey(k));
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
  if (!isObj(d) || !isStr(d.name) || !isStr(d.arch) || !isStr(d.driver)) return 'key.device needs string name, arch, driver';
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
    candidates: e.candidates.map((c) => ({ schedule: { ...c.schedule }, ms: c.ms, ...(c.note !== undefined ? { note: c.note } : {}) })),
    createdAt: e.createdAt,
  };
}

const clone = <T>(v: T): T => structuredClone(v);

function timeOf(e: TuneEntry): number {
  const t = Date.parse(e.createdAt);
  return Number.isNaN(t) ? -Infinity : t;
}

// ---------------------------------------------------------------------------------------------------------
// File I/O

let beforeRenameHook: ((tmpPath: string) => void) | undefined;

/** Tests only: called after the temp file is written and fsynced, just before it is renamed over the DB. */
export function __setBeforeRenameHookForTests(fn: ((tmpPath: string) => void) | undefined): void {
  beforeRenameHook = fn;
}

interface Loaded {
  entries: Map<string, TuneEntry>;
  warnings: string[];
}

/** Reads the file; keeps valid entries of `version` only. Never throws. */
function readDb(path: string, version: string): Loaded {
  const entries = new Map<string, TuneEntry>();
  const warnings: string[] = [];
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') warnings.push(`tuning db ${path}: cannot read (${(e as Error).message}); using an empty db`);
    return { entries, warnings };
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    warnings.push(`tuning db ${path}: not valid JSON (${(e as Error).message}); using an empty db, it is rewritten on the next put`);
    return { entries, warnings };
  }
  if (!isObj(doc) || doc.schema !== TUNING_SCHEMA || !isObj(doc.entries)) {
    const schema = isObj(doc) ? JSON.stringify(doc.schema) : 'none';
    warnings.push(`tuning db ${path}: not a ${TUNING_SCHEMA} file (schema ${schema}); using an empty db, it is rewritten on the next put`);
    return { entries, warnings };
  }
  for (const [name, raw] of Object.entries(doc.entries)) {
    const problem = entryProblem(raw);
    if (problem) {
      warnings.push(`tuning db ${path}: skipped entry ${name}: ${problem}`);
      continue;
    }
    const e = normalizeEntry(raw as TuneEntry);
    if (e.codegenVersion !== version) continue; // stale: ignored, dropped on the next write
    const k = keyString(e.key); // the key's own canonical string is authoritative
    const prev = entries.get(k);
    if (!prev || timeOf(e) > timeOf(prev)) entries.set(k, e);
  }
  return { entries, warnings };
}

function writeAll(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
}

/** Atomic replace: temp file in the same directory, fsync, rename over the path, fsync the directory. */
function writeDbAtomic(path: string, entries: Map<string, TuneEntry>): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const sorted: Record<string, TuneEntry> = {};
  for (const k of [...entries.keys()].sort()) sorted[k] = entries.get(k)!;
  const buf = Buffer.from(`${JSON.stringify({ schema: TUNING_SCHEMA, entries: sorted }, null, 2)}\n`, 'utf8');
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  let renamed = false;
  try {
    const fd = openSync(tmp, 'wx', 0o644);
    try {
      writeAll(fd, buf);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    beforeRenameHook?.(tmp);
    renameSync(tmp, path);
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
  removeStaleTmp(path);
}

/** Removes `${path}.*.tmp` files left by killed writers, once they are older than STALE_TMP_MS. */
function removeStaleTmp(path: string): void {
  const dir = dirname(path);
  const prefix = `${basename(path)}.`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  const now = Date.now();
  for (const n of names) {
    if (!n.startsWith(prefix) || !n.endsWith('.tmp')) continue;
    const p = join(dir, n);
    try {
      if (now - statSync(p).mtimeMs > STALE_TMP_MS) unlinkSync(p);
    } catch {
      /* raced with another cleaner, or not ours to remove */
    }
  }
}

// ---------------------------------------------------------------------------------------------------------

export class TuningDb {
  readonly path: string;
  readonly codegenVersion: string;
  /** Warnings collected while loading (corrupt file, skipped entries), and while re-reading before writes. */
  readonly warnings: string[] = [];
  private map: Map<string, TuneEntry>;

  constructor(path: string, opts: { codegenVersion?: string } = {}) {
    this.path = resolve(path);
    this.codegenVersion = opts.codegenVersion ?? CODEGEN_VERSION;
    const loaded = readDb(this.path, this.codegenVersion);
    this.map = loaded.entries;
    this.warnings.push(...loaded.warnings);
  }

  /** $CCEKIT_CACHE/tuning.json, else ~/.cache/ccekit/tuning.json. */
  static defaultPath(): string {
    const dir = process.env.CCEKIT_CACHE;
    return dir ? join(dir, 'tuning.json') : join(homedir(), '.cache', 'ccekit', 'tuning.json');
  }

  /** The entry of a key; undefined when missing, stale (another codegen version) or malformed. */
  get(k: TuneKey): TuneEntry | undefined {
    const e = this.map.get(keyString(k));
    if (!e || e.codegenVersion !== this.codegenVersion || entryProblem(e)) return undefined;
    return clone(e);
  }

  /**
   * Stores an entry (stamped with this db's codegen version and the current time) in memory, then rewrites
   * the file atomically, merged with its current content: entries other processes wrote meanwhile are kept,
   * the newer of two entries of one key wins, stale entries are dropped. Throws on a malformed entry (before
   * touching anything) or when the file cannot be written (memory keeps the entry).
   */
  put(e: Omit<TuneEntry, 'codegenVersion' | 'createdAt'>): void {
    const problem = entryProblem(e, true);
    if (problem) throw new TypeError(`TuningDb.put: ${problem}`);
    const b = e.key.bucket;
    const bb = bucket(b);
    if (bb.N !== b.N || bb.K !== b.K || bb.D !== b.D || bb.V !== b.V)
      throw new RangeError(`TuningDb.put: key.bucket ${JSON.stringify(b)} is not bucketed (bucket() gives ${JSON.stringify(bb)})`);
    const entry = normalizeEntry({ ...(e as TuneEntry), codegenVersion: this.codegenVersion, createdAt: new Date().toISOString() });
    const k = keyString(entry.key);
    this.map.set(k, entry);

    const disk = readDb(this.path, this.codegenVersion);
    this.warnings.push(...disk.warnings);
    const merged = disk.entries;
    for (const [mk, mine] of this.map) {
      const theirs = merged.get(mk);
      if (mk === k || !theirs || timeOf(mine) > timeOf(theirs)) merged.set(mk, mine);
    }
    this.map = merged;
    writeDbAtomic(this.path, merged);
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
