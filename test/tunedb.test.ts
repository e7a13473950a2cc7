// The autotuner's tuning database: file format, staleness, corruption, atomic writes under SIGKILL, merging.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { CODEGEN_VERSION } from '../codegen/compile.js';
import { DEFAULT_SCHEDULE, type Schedule } from '../dsl/schedule.js';
import { bucket, keyString, TUNING_SCHEMA, type TuneEntry, type TuneKey, TuningDb } from '../runtime/autotune/db.js';

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

  it.each([
    ['truncated', (s: string) => s.slice(0, Math.floor(s.length / 2))],
    ['garbage', () => '\u0000\u0001 not json at all'],
    ['wrong schema', (s: string) => s.replace(TUNING_SCHEMA, 'ccekit-tuning/999')],
    ['empty', () => ''],
  ])('a %s file gives an empty db with a warning and is repaired by put', (_, corrupt) => {
    const path = join(freshDir(), 'tuning.json');
    new TuningDb(path).put(entry(key(), 1));
    writeFileSync(path, corrupt(readFileSync(path, 'utf8')));

    const db = new TuningDb(path);
    expect(db.entries()).toEqual([]);
    expect(db.warnings).toHaveLength(1);
    expect(db.warnings[0]).toContain(path);
    db.put(entry(key({ kernel: 'cce_bwd' }), 2));

    const repaired = new TuningDb(path);
    expect(repaired.warnings).toEqual([]);
    expect(repaired.entries().map((e) => e.key.kernel)).toEqual(['cce_bwd']);
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
