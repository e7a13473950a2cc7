// The autotuner's persistent tuning database: one JSON file of measured best schedules, keyed by device,
// kernel, dtype, options and a bucketed problem shape. Entries from another codegen version are stale.
// Writes are atomic (temp file, fsync, rename), done under a lock file, and merge with whatever other
// processes wrote meanwhile. A corrupt file is moved aside (`<path>.corrupt-<time>`), never overwritten.
import { renameSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { CODEGEN_VERSION } from '../../codegen/version.js';
import {
  bucket, clone, entryProblem, errText, keyString, normalizeEntry, timeOf, type TuneEntry, type TuneKey, TuningDbError,
} from './db-entry.js';
import { corruptName, type Loaded, makeDbDir, readDb, withLock, writeDbAtomic } from './db-file.js';

export {
  bucket, type DeviceKey, keyString, type ProblemBucket, type TuneCandidate, type TuneEntry, type TuneKey,
  TUNING_SCHEMA, TuningDbError,
} from './db-entry.js';
export { __setBeforeRenameHookForTests, LOCK_STALE_MS } from './db-file.js';

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
