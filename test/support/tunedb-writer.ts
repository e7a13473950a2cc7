// Child process of test/tunedb.test.ts: `tsx tunedb-writer.ts DBPATH WRITER COUNT` puts COUNT entries with
// distinct keys (kernel `w<WRITER>-<i>`) into the tuning DB, one put (one locked read-merge-write) each.
import { TuningDb } from '../../runtime/autotune/db.js';

const [path, writer, count] = process.argv.slice(2);
if (!path || !writer || !count) throw new Error('usage: tunedb-writer.ts DBPATH WRITER COUNT');
const schedule = { rows: 4, lanes: 32, vec: 1, dChunks: 8, samplesPerStep: 4, stages: 2 } as const;
const device = { name: 'test device', arch: 'sm_00', driver: '0' };
const db = new TuningDb(path, { sync: process.env.TUNEDB_SYNC !== '0' });
for (let i = 0; i < Number(count); i++) {
  const key = { device, kernel: `w${writer}-${i}`, dtype: 'f32', options: 'o', bucket: { N: 64, K: 8, D: 32, V: 256 } };
  db.put({ key, schedule, ms: i + 1, p20: i + 1, p80: i + 1, candidates: [{ schedule, ms: i + 1 }] });
}
process.stdout.write(`${db.warnings.join('\n')}\n`);
