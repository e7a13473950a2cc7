// The autotuner's tuning database: file format, staleness, corruption (moved aside), atomic writes under SIGKILL,
// merging, the lock (four concurrent writers, stale locks), strict reading, one-line errors, warnings.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { CODEGEN_VERSION } from '../codegen/version.js';
import { DEFAULT_SCHEDULE, type Schedule } from '../codegen/schedule.js';
import {
  bucket,
  keyString,
  LOCK_STALE_MS,
  TUNING_SCHEMA,
  type TuneEntry,
  type TuneKey,
  TuningDb,
  TuningDbError,
} from '../runtime/autotune/db.js';
import { CceInputError } from '../runtime/problem.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'ccekit-tunedb-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let dirs = 0;
const freshDir = (): string => {
  const d = join(tmp, `db${dirs++}`);
  mkdirSync(d);
  return d;
};

const H100 = { name: 'NVIDIA H100 80GB HBM3', arch: 'sm_90a', driver: '13000' };
function key(over: Partial<TuneKey> = {}): TuneKey {
  return { device: H100, kernel: 'cce_fwd', dtype: 'f32', options: 'sampled|f32|uniform|scalar|-|-', bucket: bucket({ N: 8192, K: 100, D: 128, V: 50000 }), ...over };
}
function entry(k: TuneKey, ms: number, schedule: Schedule = DEFAULT_SCHEDULE, candidates = 2): Omit<TuneEntry, 'codegenVersion' | 'createdAt'> {
  return {
    key: k,
    schedule,
    ms,
    p20: ms * 0.95,
    p80: ms * 1.05,
    candidates: Array.from({ length: candidates }, (_, i) => ({ schedule: { ...schedule, rows: 1 << i % 9 } as Schedule, ms: i % 3 === 2 ? null : ms + i, ...(i % 3 === 2 ? { note: 'launch failed' } : {}) })),
  };
}
const tmpFiles = (dir: string) => readdirSync(dir).filter((n) => n.endsWith('.tmp'));

describe('bucket', () => {
  it('rounds N, K, D up to powers of two and V up to a power of four', () => {
    expect(bucket({ N: 32768, K: 511, D: 257, V: 176450 })).toEqual({ N: 32768, K: 512, D: 512, V: 262144 });
    expect(bucket({ N: 513, K: 0, D: 128, V: 15405 })).toEqual({ N: 1024, K: 0, D: 128, V: 16384 });
    expect(bucket({ N: 1, K: 1, D: 1, V: 1 })).toEqual({ N: 1, K: 1, D: 1, V: 1 });
    expect(bucket({ N: 1, K: 1, D: 1, V: 4 }).V).toBe(4);
    expect(bucket({ N: 1, K: 1, D: 1, V: 5 }).V).toBe(16);
    expect(() => bucket({ N: -1, K: 0, D: 1, V: 1 })).toThrow(RangeError);
    expect(() => bucket({ N: 1.5, K: 0, D: 1, V: 1 })).toThrow(RangeError);
  });
});

describe('keyString', () => {
  it('is canonical: property order and extra properties do not matter', () => {
    const k = key();
    const shuffled = { bucket: { V: k.bucket.V, D: k.bucket.D, K: k.bucket.K, N: k.bucket.N }, options: k.options, dtype: k.dtype, kernel: k.kernel, device: { driver: H100.driver, arch: H100.arch, name: H100.name, extra: 1 } } as TuneKey;
    expect(keyString(shuffled)).toBe(keyString(k));
    expect(keyString(k)).not.toBe(keyString(key({ dtype: 'bf16' })));
    expect(keyString(k)).toMatch(/^\{"bucket":\{"D":/);
  });
});

describe('TuningDb', () => {
  it('defaultPath follows $CCEKIT_CACHE', () => {
    const old = process.env.CCEKIT_CACHE;
    try {
      process.env.CCEKIT_CACHE = '/x/cache';
      expect(TuningDb.defaultPath()).toBe('/x/cache/tuning.json');
      delete process.env.CCEKIT_CACHE;
      expect(TuningDb.defaultPath()).toMatch(/[/\\]\.cache[/\\]ccekit[/\\]tuning\.json$/);
    } finally {
      if (old === undefined) delete process.env.CCEKIT_CACHE;
      else process.env.CCEKIT_CACHE = old;
    }
  });

  it('round-trips entries across instances, creating the directory', () => {
    const path = join(freshDir(), 'nested', 'deeper', 'tuning.json');
    const a = new TuningDb(path);
    expect(a.entries()).toEqual([]);
    expect(a.warnings).toEqual([]);
    const s: Schedule = { rows: 2, lanes: 64, vec: 4, dChunks: 1, samplesPerStep: 8, stages: 3 };
    a.put(entry(key(), 1.25, s, 5));
    a.put(entry(key({ kernel: 'cce_bwd' }), 2.5));

    const b = new TuningDb(path);
    expect(b.warnings).toEqual([]);
    expect(b.entries()).toHaveLength(2);
    const got = b.get(key())!;
    expect(got).toMatchObject({ ...entry(key(), 1.25, s, 5), codegenVersion: CODEGEN_VERSION });
    expect(got.candidates[2]).toEqual({ schedule: { ...s, rows: 4 }, ms: null, note: 'launch failed' });
    expect(Number.isNaN(Date.parse(got.createdAt))).toBe(false);
    expect(b.get(key({ dtype: 'f16' }))).toBeUndefined();

    const doc = JSON.parse(readFileSync(path, 'utf8'));
    expect(doc.schema).toBe(TUNING_SCHEMA);
    expect(Object.keys(doc.entries).sort()).toEqual([keyString(key()), keyString(key({ kernel: 'cce_bwd' }))].sort());
    expect(tmpFiles(join(path, '..'))).toEqual([]);
  });

  it('returns copies: mutating a returned entry does not change the db', () => {
    const path = join(freshDir(), 'tuning.json');
    const db = new TuningDb(path);
    db.put(entry(key(), 1));
    db.get(key())!.schedule.rows = 256;
    expect(db.get(key())!.schedule.rows).toBe(DEFAULT_SCHEDULE.rows);
  });

  it('rejects malformed or unbucketed puts without touching the file', () => {
    const path = join(freshDir(), 'tuning.json');
    const db = new TuningDb(path);
    expect(() => db.put(entry(key(), 1, { ...DEFAULT_SCHEDULE, lanes: 3 as never }))).toThrow(/lanes/);
    expect(() => db.put(entry(key(), Number.NaN))).toThrow(/ms/);
    expect(() => db.put(entry(key({ bucket: { N: 1000, K: 0, D: 128, V: 16384 } }), 1))).toThrow(/bucketed/);
    expect(existsSync(path)).toBe(false);
    expect(db.entries()).toEqual([]);
  });

  it('ignores stale entries (another codegen version) and drops them on the next write', () => {
    const path = join(freshDir(), 'tuning.json');
    new TuningDb(path, { codegenVersion: '0.0.0' }).put(entry(key(), 9));
    expect(new TuningDb(path, { codegenVersion: '0.0.0' }).get(key())?.ms).toBe(9);

    const cur = new TuningDb(path);
    expect(cur.get(key())).toBeUndefined();
    expect(cur.entries()).toEqual([]);
    cur.put(entry(key({ kernel: 'cce_bwd' }), 3));
    const doc = JSON.parse(readFileSync(path, 'utf8'));
    expect(Object.values(doc.entries).map((e) => (e as TuneEntry).codegenVersion)).toEqual([CODEGEN_VERSION]);
    expect(Object.keys(doc.entries)).toEqual([keyString(key({ kernel: 'cce_bwd' }))]);
  });

  it('skips individual malformed entries with a warning and keeps the rest', () => {
    const path = join(freshDir(), 'tuning.json');
    const db = new TuningDb(path);
    db.put(entry(key(), 1));
    db.put(entry(key({ kernel: 'cce_bwd' }), 2));
    const doc = JSON.parse(readFileSync(path, 'utf8'));
    doc.entries[keyString(key({ kernel: 'cce_bwd' }))].schedule.vec = 3;
    doc.entries.junk = { hello: 'world' };
    writeFileSync(path, JSON.stringify(doc));

    const again = new TuningDb(path);
    expect(again.get(key())?.ms).toBe(1);
    expect(again.get(key({ kernel: 'cce_bwd' }))).toBeUndefined();
    expect(again.warnings).toHaveLength(2);
    expect(again.warnings.join('\n')).toMatch(/schedule\.vec = 3/);
    expect(again.warnings.join('\n')).toMatch(/junk/);
  });

  const CORRUPT: [string, (s: string) => string][] = [
    ['truncated', (s) => s.slice(0, Math.floor(s.length / 2))],
    ['garbage', () => '\u0000\u0001 not json at all'],
    ['wrong schema', (s) => s.replace(TUNING_SCHEMA, 'ccekit-tuning/999')],
    ['empty', () => ''],
    ['JSON array', () => '[1, 2, 3]'],
    ['entries not an object', () => JSON.stringify({ schema: TUNING_SCHEMA, entries: [] })],
  ];
  it.each(CORRUPT)('a %s file is moved aside with a warning, and the db is rebuilt', (_, corrupt) => {
    const dir = freshDir();
    const path = join(dir, 'tuning.json');
    new TuningDb(path).put(entry(key(), 1));
    const bad = corrupt(readFileSync(path, 'utf8'));
    writeFileSync(path, bad);

    const db = new TuningDb(path);
    expect(db.entries()).toEqual([]);
    expect(db.warnings).toHaveLength(1);
    const aside = readdirSync(dir).filter((n) => n.startsWith('tuning.json.corrupt-'));
    expect(aside).toHaveLength(1);
    expect(aside[0]).toMatch(/^tuning\.json\.corrupt-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z$/);
    expect(readFileSync(join(dir, aside[0]!), 'utf8')).toBe(bad); // kept, byte for byte
    expect(db.warnings[0]).toContain(path);
    expect(db.warnings[0]).toContain(join(dir, aside[0]!));
    expect(existsSync(path)).toBe(false);
    db.put(entry(key({ kernel: 'cce_bwd' }), 2));

    const repaired = new TuningDb(path);
    expect(repaired.warnings).toEqual([]);
    expect(repaired.entries().map((e) => e.key.kernel)).toEqual(['cce_bwd']);
    expect(readdirSync(dir).filter((n) => n.startsWith('tuning.json.corrupt-'))).toEqual(aside);
    expect(existsSync(`${path}.lock`)).toBe(false);
  });

  it('a file corrupted after open is moved aside by the next put, not overwritten', () => {
    const dir = freshDir();
    const path = join(dir, 'tuning.json');
    const db = new TuningDb(path);
    db.put(entry(key(), 1));
    writeFileSync(path, '{"schema": "ccekit-tuning/1", "entr');
    db.put(entry(key({ kernel: 'cce_bwd' }), 2));
    const aside = readdirSync(dir).filter((n) => n.startsWith('tuning.json.corrupt-'));
    expect(aside).toHaveLength(1);
    expect(readFileSync(join(dir, aside[0]!), 'utf8')).toBe('{"schema": "ccekit-tuning/1", "entr');
    expect(db.warnings).toHaveLength(1);
    expect(db.warnings[0]).toMatch(/not valid JSON.*moved it to/);
    // Memory still held the first entry: the rebuilt file has both.
    expect(new TuningDb(path).entries().map((e) => e.key.kernel)).toEqual(['cce_bwd', 'cce_fwd']);
  });

  it('survives a writer killed between fsync and rename', async () => {
    const dir = freshDir();
    const path = join(dir, 'tuning.json');
    new TuningDb(path).put(entry(key(), 1));
    const before = readFileSync(path, 'utf8');

    const script = join(dir, 'killed-writer.mts');
    const dbUrl = pathToFileURL(join(ROOT, 'runtime/autotune/db.ts')).href;
    writeFileSync(
      script,
      `import { TuningDb, __setBeforeRenameHookForTests } from ${JSON.stringify(dbUrl)};
const db = new TuningDb(process.argv[2]);
__setBeforeRenameHookForTests(() => process.kill(process.pid, 'SIGKILL'));
const schedule = { rows: 4, lanes: 32, vec: 1, dChunks: 8, samplesPerStep: 4, stages: 2 };
const candidates = Array.from({ length: 20000 }, (_, i) => ({ schedule, ms: i, note: 'padding '.repeat(4) }));
db.put({ key: { ...${JSON.stringify(key())}, kernel: 'big' }, schedule, ms: 1, p20: 1, p80: 1, candidates });
console.log('not killed');
`,
    );
    const res = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }>((done, fail) => {
      const child = spawn(process.execPath, ['--import', 'tsx', script, path], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      child.on('error', fail);
      child.on('close', (code, signal) => done({ code, signal, out }));
    });
    expect(res.signal, res.out).toBe('SIGKILL');

    // The old file is untouched; the fully written (fsynced) temp file is left behind and ignored.
    expect(readFileSync(path, 'utf8')).toBe(before);
    const left = tmpFiles(dir);
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(/^tuning\.json\.\d+\.[0-9a-f]+\.tmp$/);
    const leftPath = join(dir, left[0]!);
    expect(statSync(leftPath).size).toBeGreaterThan(1_000_000);
    expect(Object.keys(JSON.parse(readFileSync(leftPath, 'utf8')).entries)).toContain(keyString({ ...key(), kernel: 'big' }));

    const db = new TuningDb(path);
    expect(db.warnings).toEqual([]);
    expect(db.entries().map((e) => e.key.kernel)).toEqual(['cce_fwd']);
    expect(db.get({ ...key(), kernel: 'big' })).toBeUndefined();

    // A recent leftover survives the next write (it may belong to a live writer); an old one is removed.
    db.put(entry(key({ kernel: 'cce_bwd' }), 2));
    expect(tmpFiles(dir)).toEqual(left);
    const old = new Date(Date.now() - 5 * 60_000);
    utimesSync(leftPath, old, old);
    db.put(entry(key({ kernel: 'cce_bwd' }), 3));
    expect(tmpFiles(dir)).toEqual([]);
    expect(new TuningDb(path).entries().map((e) => [e.key.kernel, e.ms])).toEqual([
      ['cce_bwd', 3],
      ['cce_fwd', 1],
    ]);
  });

  it('merges concurrent writers: different keys both survive, the newer put of one key wins', () => {
    const path = join(freshDir(), 'tuning.json');
    const a = new TuningDb(path);
    const b = new TuningDb(path);
    a.put(entry(key({ kernel: 'a' }), 1));
    b.put(entry(key({ kernel: 'b' }), 2));
    // b re-read the file before writing, so a's entry survived and b now knows it.
    expect(b.get(key({ kernel: 'a' }))?.ms).toBe(1);

    a.put(entry(key({ kernel: 'shared' }), 10));
    b.put(entry(key({ kernel: 'shared' }), 20)); // newer
    a.put(entry(key({ kernel: 'a2' }), 3)); // a's memory holds the older 'shared'; the file's newer one wins

    const c = new TuningDb(path);
    expect(c.entries().map((e) => [e.key.kernel, e.ms])).toEqual([
      ['a', 1],
      ['a2', 3],
      ['b', 2],
      ['shared', 20],
    ]);
    expect(a.get(key({ kernel: 'shared' }))?.ms).toBe(20);
    expect(tmpFiles(join(path, '..'))).toEqual([]);
  });
});

describe('TuningDb warnings', () => {
  it('collects each warning once; takeWarnings hands each out once', () => {
    const path = join(freshDir(), 'tuning.json');
    const db0 = new TuningDb(path);
    db0.put(entry(key(), 1));
    const doc = JSON.parse(readFileSync(path, 'utf8'));
    doc.entries.junk = { hello: 'world' };
    writeFileSync(path, JSON.stringify(doc));

    const db = new TuningDb(path);
    expect(db.warnings).toEqual([expect.stringMatching(/skipped entry junk: .*dropped on the next write/)]);
    expect(db.takeWarnings()).toEqual(db.warnings);
    expect(db.takeWarnings()).toEqual([]);
    // put re-reads the file and meets the same bad entry: no second copy of the warning.
    db.put(entry(key({ kernel: 'cce_bwd' }), 2));
    expect(db.warnings).toHaveLength(1);
    expect(db.takeWarnings()).toEqual([]);
    expect(new TuningDb(path).warnings).toEqual([]); // dropped by the write
  });

  it('warns about entries of another codegen version', () => {
    const path = join(freshDir(), 'tuning.json');
    new TuningDb(path, { codegenVersion: '0.0.0' }).put(entry(key(), 9));
    new TuningDb(path, { codegenVersion: '0.0.0' }).put(entry(key({ kernel: 'b' }), 9));
    const db = new TuningDb(path);
    expect(db.entries()).toEqual([]);
    expect(db.warnings).toHaveLength(1);
    expect(db.warnings[0]).toContain(path);
    expect(db.warnings[0]).toContain(`ignored 2 entries tuned by codegen version 0.0.0 (this is ${CODEGEN_VERSION})`);
  });
});

describe('TuningDb errors', () => {
  const oneLine = (fn: () => unknown, path: string, msg: RegExp): TuningDbError => {
    let err: unknown;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TuningDbError);
    expect(err).toBeInstanceOf(CceInputError);
    const e = err as TuningDbError;
    expect(e.name).toBe('TuningDbError');
    expect(e.path).toBe(path);
    expect(e.message.startsWith(`tuning db ${path}: `)).toBe(true);
    expect(e.message).not.toMatch(/\n/);
    expect(e.message).toMatch(msg);
    return e;
  };

  it('a folder at the db path is one clear error, on open and on put', () => {
    const path = join(freshDir(), 'tuning.json');
    mkdirSync(path);
    oneLine(() => new TuningDb(path), path, /is a folder/);
    oneLine(() => TuningDb.readStrict(path), path, /is a folder/);
  });

  it('a FIFO at the db path is refused, not read (no hang)', () => {
    const path = join(freshDir(), 'tuning.json');
    const r = spawnSync('mkfifo', [path]);
    expect(r.status, String(r.stderr)).toBe(0);
    oneLine(() => new TuningDb(path), path, /is not a regular file/);
  });

  it('a file where a folder should be: one error on open (reading) and on put (creating the folder)', () => {
    const dir = freshDir();
    writeFileSync(join(dir, 'afile'), 'x');
    const path = join(dir, 'afile', 'sub', 'tuning.json');
    oneLine(() => new TuningDb(path), path, /a parent of this path is a file/);
    const path2 = join(dir, 'afile', 'tuning.json');
    oneLine(() => new TuningDb(path2), path2, /a parent of this path is a file/);
  });

  it('put under /proc fails with one error, without hanging', () => {
    const path = '/proc/ccekit-no-such/deeper/tuning.json';
    const db = new TuningDb(path);
    expect(db.entries()).toEqual([]);
    oneLine(() => db.put(entry(key(), 1)), path, /cannot create its folder/);
  });

  it('readStrict: a missing, empty, truncated, garbage or wrong-shape file or a bad entry is an error', () => {
    const dir = freshDir();
    const path = join(dir, 'tuning.json');
    oneLine(() => TuningDb.readStrict(path), path, /no such file/);
    expect(existsSync(path)).toBe(false);
    new TuningDb(path).put(entry(key(), 1));
    const good = readFileSync(path, 'utf8');
    const strict = TuningDb.readStrict(path);
    expect(strict.entries().map((e) => e.ms)).toEqual([1]);
    expect(strict.warnings).toEqual([]);

    const cases: [string, string, RegExp][] = [
      ['empty', '', /the file is empty/],
      ['truncated', good.slice(0, 100), /not valid JSON/],
      ['garbage', 'garbage', /not valid JSON/],
      ['wrong schema', good.replace(TUNING_SCHEMA, 'x/2'), /not a ccekit-tuning\/1 file \(schema "x\/2"\)/],
      ['no entries', JSON.stringify({ schema: TUNING_SCHEMA }), /'entries' is not an object/],
      ['bad entry', good.replace('"ms":1,', '"ms":"fast",'), /entry .*: ms is not a finite number/],
    ];
    for (const [what, text, msg] of cases) {
      writeFileSync(path, text);
      oneLine(() => TuningDb.readStrict(path), path, msg);
      // Strict reading changes nothing: the file stays, nothing is moved aside.
      expect(readFileSync(path, 'utf8'), what).toBe(text);
      expect(readdirSync(dir).filter((n) => n !== 'tuning.json'), what).toEqual([]);
    }
  });
});

describe('TuningDb lock', () => {
  const runWriter = (path: string, writer: number, count: number, env: NodeJS.ProcessEnv = {}) =>
    new Promise<{ code: number | null; out: string }>((done, fail) => {
      const script = join(ROOT, 'test/support/tunedb-writer.ts');
      const args = ['--import', 'tsx', script, path, String(writer), String(count)];
      const child = spawn(process.execPath, args, {
        cwd: ROOT,
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      child.on('error', fail);
      child.on('close', (code) => done({ code, out }));
    });

  it('four processes writing 100 entries each at once leave exactly 400 entries', async () => {
    const dir = freshDir();
    const path = join(dir, 'tuning.json');
    // fsync off: the lock and the atomic rename are the same, the test takes seconds instead of tens.
    const res = await Promise.all([0, 1, 2, 3].map((w) => runWriter(path, w, 100, { TUNEDB_SYNC: '0' })));
    for (const r of res) expect(r.code, r.out).toBe(0);
    for (const r of res) expect(r.out.trim(), 'warnings of a writer').toBe('');
    const db = new TuningDb(path);
    expect(db.warnings).toEqual([]);
    const got = db.entries().map((e) => `${e.key.kernel}=${e.ms}`).sort();
    const want = [0, 1, 2, 3].flatMap((w) => Array.from({ length: 100 }, (_, i) => `w${w}-${i}=${i + 1}`)).sort();
    expect(got).toEqual(want);
    expect(readdirSync(dir).sort()).toEqual(['tuning.json']); // no lock, temp or stale file left
  });

  /** The pid of a process that has exited (and been reaped). */
  const deadPid = (): number => {
    const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    return Number(String(r.stdout));
  };

  it('takes over a lock whose process is gone', () => {
    const dir = freshDir();
    const path = join(dir, 'tuning.json');
    const pid = deadPid();
    const lock = { pid, host: hostname(), token: 'dead', time: new Date().toISOString() };
    writeFileSync(`${path}.lock`, JSON.stringify(lock));
    new TuningDb(path).put(entry(key(), 1));
    expect(new TuningDb(path).get(key())?.ms).toBe(1);
    expect(readdirSync(dir)).toEqual(['tuning.json']);
  });

  it('takes over a lock older than LOCK_STALE_MS even if its process lives, or if it is unreadable', () => {
    const dir = freshDir();
    const path = join(dir, 'tuning.json');
    const old = new Date(Date.now() - LOCK_STALE_MS - 5_000);
    for (const body of [JSON.stringify({ pid: process.ppid, host: hostname(), token: 't' }), '', 'garbage']) {
      writeFileSync(`${path}.lock`, body);
      utimesSync(`${path}.lock`, old, old);
      new TuningDb(path).put(entry(key(), body.length));
      expect(new TuningDb(path).get(key())?.ms).toBe(body.length);
      expect(readdirSync(dir)).toEqual(['tuning.json']);
    }
  });

  it('a corrupt file found by a reader is moved aside under the lock (a dead holder is taken over)', () => {
    const dir = freshDir();
    const path = join(dir, 'tuning.json');
    writeFileSync(path, 'not json');
    writeFileSync(`${path}.lock`, JSON.stringify({ pid: deadPid(), host: hostname(), token: 'x' }));
    const db = new TuningDb(path);
    expect(db.warnings).toEqual([expect.stringMatching(/not valid JSON.*moved it to .*tuning\.json\.corrupt-/)]);
    expect(readdirSync(dir).filter((n) => !n.startsWith('tuning.json.corrupt-'))).toEqual([]);
  });
});
