// The tuning database's entries (runtime/autotune/db.ts): keys, bucketing, validation of loaded JSON and of
// put() arguments, and the error type.
import { checkScheduleShape, type Schedule } from '../../codegen/schedule.js';
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

export const j = JSON.stringify;

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

export const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
export const isStr = (v: unknown): v is string => typeof v === 'string';
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
export function entryProblem(e: unknown, partial = false): string | undefined {
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
export function normalizeEntry(e: TuneEntry): TuneEntry {
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

export const clone = <T>(v: T): T => structuredClone(v);

export function timeOf(e: TuneEntry): number {
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

export const errCode = (e: unknown): string => (e as NodeJS.ErrnoException)?.code ?? '';
export const errText = (e: unknown): string => errCode(e) || (e as Error).message;
