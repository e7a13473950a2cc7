// A vitest reporter (next to the default one, vitest.config.ts) that ends the run with one line: how many tests
// were skipped, why, and the command that installs what is missing. Reasons come from two places: the note of
// a test skipped at run time (`skipTest` → t.skip(note)), and, for tests of a describe skipped at collection
// (`describe.skipIf(skipMissing(...))`), the reasons that test file recorded in a folder this reporter creates
// and hands to the forked workers through the environment (SKIP_DIR_ENV).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { Reporter, TestModule, Vitest } from 'vitest/node';
import { SETUP_COMMAND, SKIP_DIR_ENV } from './skip-env.js';

/** The reasons each test file recorded, file path → reasons in first-seen order. */
function readRecords(dir: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const f of readdirSync(dir))
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
      if (!line) continue;
      const { file, what } = JSON.parse(line) as { file: string; what: string };
      const list = out.get(file) ?? [];
      if (!list.includes(what)) list.push(what);
      out.set(file, list);
    }
  return out;
}

/** The summary line: `N tests skipped: <count> <reason> (<files>), ...; install ...`, or that none was skipped. */
export function skipLine(
  modules: readonly TestModule[],
  records: Map<string, string[]>,
  ci: boolean,
  namePattern?: RegExp,
): string {
  const byReason = new Map<string, { count: number; files: Set<string> }>();
  let total = 0;
  for (const m of modules)
    for (const t of m.children.allTests()) {
      const r = t.result();
      if (r.state !== 'skipped') continue;
      const recorded = records.get(m.moduleId);
      // Left out by `-t <pattern>`: not a skip of this suite's.
      if (!r.note && !recorded && namePattern && !namePattern.test(t.fullName.split(' > ').join(' '))) continue;
      total++;
      const why = r.note ?? (recorded ? `${recorded.join(' or ')} not found` : 'no reason given');
      const entry = byReason.get(why) ?? { count: 0, files: new Set<string>() };
      entry.count++;
      entry.files.add(basename(m.moduleId).replace(/\.test\.ts$/, ''));
      byReason.set(why, entry);
    }
  if (!total) return 'skipped: none';
  const reasons = [...byReason]
    .sort((a, b) => b[1].count - a[1].count)
    .map(([why, e]) => `${e.count} ${why} (${[...e.files].join(', ')})`);
  const fix = ci ? 'CI is set, so a missing toolchain fails instead' : `install the missing pieces: ${SETUP_COMMAND}`;
  return `skipped ${total} test${total === 1 ? '' : 's'}: ${reasons.join('; ')} — ${fix}`;
}

export default class SkipSummary implements Reporter {
  private dir = '';
  private namePattern?: RegExp;

  onInit(vitest: Vitest): void {
    const p = vitest.config.testNamePattern;
    this.namePattern = p === undefined ? undefined : new RegExp(p);
    this.dir = mkdtempSync(join(tmpdir(), 'ccekit-skips-'));
    process.env[SKIP_DIR_ENV] = this.dir;
  }

  onTestRunEnd(modules: readonly TestModule[]): void {
    const records = this.dir ? readRecords(this.dir) : new Map<string, string[]>();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    console.log(skipLine(modules, records, !!process.env.CI, this.namePattern));
  }
}
