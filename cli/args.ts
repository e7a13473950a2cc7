// A small command-line parser for the ccekit CLI: `--name value`, `--name=value`, boolean switches, typed
// numbers and enums, a usage text built from the same table. Every mistake is a UsageError with one line.
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

const looksNumeric = (s: string) => /^[-+]?(\d|\.\d)/.test(s);

function parseNumber(cmd: string, name: string, flag: Flag & { kind: 'int' | 'num' }, raw: string): number {
  const int = flag.kind === 'int';
  const v = raw.trim() === '' ? NaN : Number(raw);
  const what = int ? 'an integer' : 'a number';
  const range =
    flag.min !== undefined && flag.max !== undefined
      ? ` in [${flag.min}, ${flag.max}]`
      : flag.min !== undefined
        ? ` >= ${flag.min}`
        : flag.max !== undefined
          ? ` <= ${flag.max}`
          : '';
  if (!Number.isFinite(v) || (int && !Number.isSafeInteger(v)) || (flag.min !== undefined && v < flag.min) || (flag.max !== undefined && v > flag.max))
    throw new UsageError(`--${name} expects ${what}${range}, got '${raw}'`, cmd);
  return v;
}

/** Parse argv (without the subcommand) against a flag table; defaults fill absent flags. */
export function parseFlags<const T extends FlagTable>(cmd: string, argv: readonly string[], table: T): Parsed<T> {
  const out: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(table)) out[name] = f.kind === 'bool' ? false : 'default' in f ? f.default : undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--') || arg === '--') throw new UsageError(`unexpected argument '${arg}'`, cmd);
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const flag = table[name];
    if (!flag) throw new UsageError(`unknown flag --${name} for '${cmd}'`, cmd);
    let raw: string;
    if (eq >= 0) raw = arg.slice(eq + 1);
    else if (flag.kind === 'bool') {
      out[name] = true;
      continue;
    } else {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('-') && !looksNumeric(next))) throw new UsageError(`--${name} needs a value`, cmd);
      raw = next;
      i++;
    }
    switch (flag.kind) {
      case 'bool':
        if (!['true', 'false', '1', '0'].includes(raw)) throw new UsageError(`--${name} is a switch; --${name}=${raw} is not true or false`, cmd);
        out[name] = raw === 'true' || raw === '1';
        break;
      case 'int':
      case 'num':
        out[name] = parseNumber(cmd, name, flag, raw);
        break;
      case 'enum':
        if (!flag.values.includes(raw)) throw new UsageError(`--${name} must be one of ${flag.values.join(', ')}, got '${raw}'`, cmd);
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

/** A --share flag: 0 (per-row negatives) or a group size of row-tile-shared negatives. */
export function checkShare(share: number, cmd: string, allowZero = true): void {
  if ((share !== 0 || !allowZero) && !SHARE_ROWS.includes(share)) throw new UsageError(`--share: ${SHARE_ROWS_TEXT} rows, got ${share}`, cmd);
}

/** Usage text: a synopsis, a description and the flag table (with defaults). */
export function usage(synopsis: string, description: string, table: FlagTable): string {
  const rows: [string, string, string | undefined][] = Object.entries(table).map(([name, f]) => {
    const meta = f.kind === 'bool' ? '' : ` ${f.metavar ?? (f.kind === 'enum' ? f.values.join('|') : f.kind === 'str' ? 'STR' : 'N')}`;
    const def = f.kind !== 'bool' && 'default' in f && f.default !== undefined ? ` (default ${f.default})` : '';
    return [`--${name}${meta}`, f.help + def, f.group];
  });
  const width = Math.min(34, Math.max(...rows.map((r) => r[0].length)));
  const lines = [`usage: ${synopsis}`, '', description, ''];
  let group: string | undefined;
  for (const [left, right, g] of rows) {
    if (g !== group && g) lines.push(`${g}:`);
    group = g;
    lines.push(left.length > width ? `  ${left}\n  ${' '.repeat(width)}  ${right}` : `  ${left.padEnd(width)}  ${right}`);
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
