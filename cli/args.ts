// A small command-line parser for the ccekit CLI: `--name value`, `--name=value`, boolean switches, typed
// numbers and enums, a usage text built from the same table. Every mistake is a UsageError with one line.
// Also the one reader of JSON-or-file flags (--schedule, --schedules, --reduce-schedule) and of input files.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { SCHEDULE_SPACE, type Schedule } from '../codegen/schedule.js';
import { SHARE_ROWS, SHARE_ROWS_TEXT } from '../runtime/problem.js';

/** A mistake on the command line; main prints `ccekit: <message> (see ccekit <cmd> --help)`, exit 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

interface FlagBase {
  help: string;
  /** Placeholder shown in the usage (default: the kind, e.g. N or DIR). */
  metavar?: string;
  /** Group heading in the usage text. */
  group?: string;
}
export type Flag =
  | (FlagBase & { kind: 'bool' })
  | (FlagBase & { kind: 'int'; default?: number; min?: number; max?: number })
  | (FlagBase & { kind: 'num'; default?: number; min?: number; max?: number })
  | (FlagBase & { kind: 'str'; default?: string })
  | (FlagBase & { kind: 'enum'; values: readonly string[]; default?: string });

export type FlagTable = Record<string, Flag>;

type ValueOf<F> = F extends { kind: 'bool' }
  ? boolean
  : F extends { kind: 'enum'; values: readonly (infer V)[] }
    ? F extends { default: string }
      ? V
      : V | undefined
    : F extends { kind: 'int' | 'num' }
      ? F extends { default: number }
        ? number
        : number | undefined
      : F extends { default: string }
        ? string
        : string | undefined;

export type Parsed<T extends FlagTable> = { -readonly [K in keyof T]: ValueOf<T[K]> };

export const isHelp = (argv: readonly string[]): boolean => argv.includes('--help') || argv.includes('-h');

const looksNumeric = (s: string) => /^-(\d|\.\d)/.test(s);

/** Decimal integers only: no hex, binary, exponent, separators, sign '+' or spaces (Number() takes them all). */
const INT_TEXT = /^-?\d+$/;
/** Decimal numbers: digits, an optional fraction and exponent. */
const NUM_TEXT = /^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/;

function parseNumber(cmd: string, name: string, flag: Flag & { kind: 'int' | 'num' }, raw: string): number {
  const int = flag.kind === 'int';
  const v = (int ? INT_TEXT : NUM_TEXT).test(raw) ? Number(raw) : NaN;
  const what = int ? 'an integer' : 'a number';
  const range =
    flag.min !== undefined && flag.max !== undefined
      ? ` in [${flag.min}, ${flag.max}]`
      : flag.min !== undefined
        ? ` >= ${flag.min}`
        : flag.max !== undefined
          ? ` <= ${flag.max}`
          : '';
  const bad = !Number.isFinite(v) || (int && !Number.isSafeInteger(v));
  if (bad || (flag.min !== undefined && v < flag.min) || (flag.max !== undefined && v > flag.max)) {
    const form = bad && int ? ' (decimal digits)' : '';
    throw new UsageError(`--${name} expects ${what}${range}${form}, got '${raw}'`, cmd);
  }
  return Object.is(v, -0) ? 0 : v;
}

/** Parse argv (without the subcommand) against a flag table; defaults fill absent flags. */
export function parseFlags<const T extends FlagTable>(cmd: string, argv: readonly string[], table: T): Parsed<T> {
  const out: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(table)) {
    if (f.kind === 'bool') out[name] = false;
    else out[name] = 'default' in f ? f.default : undefined;
  }
  const seen = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--') || arg === '--') throw new UsageError(`unexpected argument '${arg}'`, cmd);
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const flag = Object.hasOwn(table, name) ? table[name] : undefined;
    if (!flag) throw new UsageError(`unknown flag --${name} for '${cmd}'`, cmd);
    if (seen.has(name)) throw new UsageError(`--${name} is given more than once; give it once`, cmd);
    seen.add(name);
    let raw: string;
    if (eq >= 0) raw = arg.slice(eq + 1);
    else if (flag.kind === 'bool') {
      out[name] = true;
      continue;
    } else {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('-') && !looksNumeric(next)))
        throw new UsageError(`--${name} needs a value`, cmd);
      raw = next;
      i++;
    }
    switch (flag.kind) {
      case 'bool':
        if (!['true', 'false', '1', '0'].includes(raw))
          throw new UsageError(`--${name} is a switch; --${name}=${raw} is not true or false`, cmd);
        out[name] = raw === 'true' || raw === '1';
        break;
      case 'int':
      case 'num':
        out[name] = parseNumber(cmd, name, flag, raw);
        break;
      case 'enum':
        if (!flag.values.includes(raw))
          throw new UsageError(`--${name} must be one of ${flag.values.join(', ')}, got '${raw}'`, cmd);
        out[name] = raw;
        break;
      case 'str':
        if (raw === '') throw new UsageError(`--${name} needs a non-empty value`, cmd);
        out[name] = raw;
        break;
    }
  }
  return out as Parsed<T>;
}

/** The flags given on a command line (argv after the subcommand), whatever their values. */
export function givenFlags(argv: readonly string[]): Set<string> {
  return new Set(argv.filter((a) => a.startsWith('--') && a !== '--').map((a) => a.slice(2).split('=')[0]!));
}

/** A --share flag: 0 (per-row negatives) or a group size of row-tile-shared negatives. */
export function checkShare(share: number, cmd: string, allowZero = true): void {
  if ((share !== 0 || !allowZero) && !SHARE_ROWS.includes(share))
    throw new UsageError(`--share: ${SHARE_ROWS_TEXT} rows, got ${share}`, cmd);
}

// ---------------------------------------------------------------- input files and JSON flags

/** Largest input file (JSON, a transform's source) the CLI reads. */
export const MAX_INPUT_BYTES = 16 << 20;

/**
 * Reads a user's input file: a regular file (never a FIFO, a device such as /dev/zero, or a folder) of at
 * most `maxBytes`. Errors are UsageErrors naming the flag.
 */
export function readUserFile(cmd: string, flag: string, path: string, maxBytes = MAX_INPUT_BYTES): string {
  let size: number;
  try {
    const st = statSync(path);
    if (st.isDirectory()) throw new UsageError(`${flag}: '${path}' is a folder, not a file`, cmd);
    if (!st.isFile()) throw new UsageError(`${flag}: '${path}' is not a regular file`, cmd);
    size = st.size;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? `no file '${path}'` : `cannot read '${path}' (${code ?? (e as Error).message})`;
    throw new UsageError(`${flag}: ${why}`, cmd);
  }
  if (size > maxBytes) {
    throw new UsageError(`${flag}: '${path}' has ${size} bytes, more than the ${maxBytes} an input file may have`, cmd);
  }
  const unreadable = (e: unknown) => {
    const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    return new UsageError(`${flag}: cannot read '${path}' (${why})`, cmd);
  };
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw unreadable(e);
  }
  try {
    // One byte more than the stat said: a file that grows meanwhile is refused, never read forever.
    const buf = Buffer.alloc(size + 1);
    let n = 0;
    for (let r; n < buf.length && (r = readSync(fd, buf, n, buf.length - n, null)) > 0; ) n += r;
    if (n > size) throw new UsageError(`${flag}: '${path}' changed while it was read`, cmd);
    return buf.subarray(0, n).toString('utf8');
  } catch (e) {
    throw e instanceof UsageError ? e : unreadable(e);
  } finally {
    closeSync(fd);
  }
}

/** One line of printable text: newlines become spaces, other control characters '?'. */
export const oneLine = (s: string): string =>
  s
    .replace(/\s*\n\s*/g, ' ')
    .replace(/[\u0000-\u001f\u007f-\u009f\ufffd]/g, '?')
    .trim();

/**
 * The value of a JSON-or-file flag: JSON text when it starts with '{' or '[', else the name of a JSON file.
 * Every mistake is one UsageError line naming the flag (and the file).
 */
export function jsonFlag(cmd: string, flag: string, raw: string): unknown {
  const t = raw.trimStart();
  const inline = t.startsWith('{') || t.startsWith('[');
  const text = inline ? raw : readUserFile(cmd, flag, raw);
  try {
    return JSON.parse(text);
  } catch (e) {
    const where = inline ? '' : ` (file '${raw}')`;
    throw new UsageError(`${flag}${where} is not valid JSON: ${oneLine((e as Error).message)}`, cmd);
  }
}

const SCHEDULE_FIELDS = Object.keys(SCHEDULE_SPACE) as (keyof Schedule)[];

function show(v: unknown): string {
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : String(v);
}

/**
 * One schedule field's value, from `where` (a flag, or a JSON field: '--schedule: lanes'): a number that is
 * one of SCHEDULE_SPACE's values (the message says what type or value is wrong).
 */
export function scheduleValue(cmd: string, where: string, field: keyof Schedule, v: unknown): number {
  const allowed = SCHEDULE_SPACE[field] as readonly number[];
  if (typeof v !== 'number') {
    throw new UsageError(`${where} must be a number (one of ${allowed.join(', ')}), got ${show(v)}`, cmd);
  }
  if (!allowed.includes(v)) throw new UsageError(`${where} must be one of ${allowed.join(', ')}, got ${v}`, cmd);
  return v;
}

/** A (partial) schedule object of a JSON flag: known fields only, each a valid number. */
export function partialSchedule(cmd: string, flag: string, j: unknown): Partial<Schedule> {
  if (j === null || typeof j !== 'object' || Array.isArray(j)) {
    throw new UsageError(`${flag} must be a JSON object of schedule fields, got ${show(j)}`, cmd);
  }
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(j)) {
    if (!(SCHEDULE_FIELDS as string[]).includes(k)) {
      throw new UsageError(`${flag}: unknown field '${k}' (fields: ${SCHEDULE_FIELDS.join(', ')})`, cmd);
    }
    out[k] = scheduleValue(cmd, `${flag}: ${k}`, k as keyof Schedule, v);
  }
  return out as Partial<Schedule>;
}

/** A JSON-or-file flag holding one (partial) schedule. */
export function scheduleFlag(cmd: string, flag: string, raw: string): Partial<Schedule> {
  return partialSchedule(cmd, flag, jsonFlag(cmd, flag, raw));
}

/** A JSON-or-file flag holding a non-empty list of (partial) schedules. */
export function scheduleListFlag(cmd: string, flag: string, raw: string): Partial<Schedule>[] {
  const j = jsonFlag(cmd, flag, raw);
  if (!Array.isArray(j)) {
    throw new UsageError(`${flag} must be a JSON list of (partial) schedules, got ${show(j)}`, cmd);
  }
  if (j.length === 0) {
    throw new UsageError(`${flag} is an empty list; give at least one (partial) schedule, e.g. [{}]`, cmd);
  }
  return j.map((x, i) => partialSchedule(cmd, `${flag}[${i}]`, x));
}

/** A comma-separated list of decimal integers (e.g. --d-values, --share lists). */
export function intList(cmd: string, flag: string, text: string, min: number, max: number): number[] {
  const items = text.split(',').map((x) => x.trim());
  for (const x of items) {
    if (!INT_TEXT.test(x) || Number(x) < min || Number(x) > max) {
      const what = `a comma-separated list of integers in [${min}, ${max}]`;
      throw new UsageError(`${flag} expects ${what}, got '${text}'`, cmd);
    }
  }
  return items.map(Number);
}

/** Usage text: a synopsis, a description and the flag table (with defaults). */
export function usage(synopsis: string, description: string, table: FlagTable): string {
  const rows: [string, string, string | undefined][] = Object.entries(table).map(([name, f]) => {
    let meta = '';
    if (f.kind !== 'bool') {
      const placeholder = f.kind === 'enum' ? f.values.join('|') : { str: 'STR', int: 'N', num: 'N' }[f.kind];
      meta = ` ${f.metavar ?? placeholder}`;
    }
    const def = f.kind !== 'bool' && 'default' in f && f.default !== undefined ? ` (default ${f.default})` : '';
    return [`--${name}${meta}`, f.help + def, f.group];
  });
  const width = Math.min(34, Math.max(...rows.map((r) => r[0].length)));
  const lines = [`usage: ${synopsis}`, '', description, ''];
  let group: string | undefined;
  for (const [left, right, g] of rows) {
    if (g !== group && g) lines.push(`${g}:`);
    group = g;
    if (left.length > width) lines.push(`  ${left}\n  ${' '.repeat(width)}  ${right}`);
    else lines.push(`  ${left.padEnd(width)}  ${right}`);
  }
  lines.push(`  ${'--help, -h'.padEnd(width)}  this text`);
  return lines.join('\n');
}

/** A plain text table: first row is the header; columns whose cells are all numbers are right-aligned. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const num = (s: string) => /^[-+]?(\d|\.\d|inf|nan)/i.test(s);
  const right = rows[0]!.map((_, c) => rows.slice(1).every((r) => !r[c] || num(r[c]!)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => (right[c] ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
