// The benchmark tools: settings and anchors, the markdown table, the SVG plot (library and CLI), and the
// PyTorch baseline script (py_compile here; its --check mode where a python3 with torch exists).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { markdownTable, renderSvg } from '../bench/plot.js';
import { ANCHORS, type BenchRow, SETTINGS, anchorRows } from '../bench/settings.js';
import { TORCH_PYTHON, findPython, findTorchPython, must, skipTest } from './support/toolchains.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SCRIPT = join(ROOT, 'bench', 'torch_baseline.py');
const tmp = mkdtempSync(join(tmpdir(), 'ccekit-bench-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const CARD = 'NVIDIA H100 80GB HBM3';
const SAMPLE: BenchRow[] = [
  { impl: 'torch-ce-minus', setting: 'beauty', N: 32768, V: 176450, K: 511, D: 256, dtype: 'f16', ms: 36.5, p20: 36.1, p80: 37.0, peak_mib: 33000, card: CARD },
  { impl: 'torch-full-ce', setting: 'beauty', N: 32768, V: 176450, K: 511, D: 256, dtype: 'f16', ms: null, peak_mib: null, card: CARD, note: 'needs ~65 GiB' },
  { impl: 'torch-ce-minus', setting: 'ml20m', N: 131072, V: 15405, K: 511, D: 256, dtype: 'f16', ms: null, peak_mib: null, card: CARD, note: 'OOM' },
  { impl: 'torch-full-ce', setting: 'ml20m', N: 131072, V: 15405, K: 511, D: 256, dtype: 'f16', ms: 40.2, p20: 40.0, p80: 40.9, peak_mib: 23100, card: CARD },
  { impl: 'ccekit-cuda', setting: 'small-d', N: 65536, V: 100000, K: 511, D: 64, dtype: 'f16', ms: 9.1, p20: 9.0, p80: 9.3, peak_mib: 520, card: CARD, schedule: { rows: 64 } },
];

/** Well-formedness of the SVG as XML: balanced tags, one root element. */
function checkXml(xml: string): void {
  const body = xml.replace(/^<\?xml[^>]*\?>\s*/, '');
  const stack: string[] = [];
  let roots = 0;
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|<!--[\s\S]*?-->/g;
  let last = 0;
  for (let m = tag.exec(body); m; m = tag.exec(body)) {
    const between = body.slice(last, m.index);
    expect(between, `stray markup before ${m[0]}`).not.toMatch(/[<>]/);
    expect(between.replace(/&(amp|lt|gt|quot|apos|#\d+);/g, ''), 'bare &').not.toContain('&');
    last = tag.lastIndex;
    if (m[0].startsWith('<!--')) continue;
    const [, close, name, , selfClose] = m;
    if (close) {
      expect(stack.pop(), `closing </${name}>`).toBe(name);
    } else {
      if (stack.length === 0) roots++;
      if (!selfClose) stack.push(name);
    }
  }
  expect(body.slice(last).trim()).toBe('');
  expect(stack).toEqual([]);
  expect(roots).toBe(1);
}

function barCount(rows: BenchRow[]): number {
  let n = 0;
  for (const r of rows) {
    if (r.ms !== null && r.ms > 0) n++;
    if (r.peak_mib !== null && r.peak_mib > 0) n++;
  }
  return n;
}

describe('bench settings', () => {
  it('has the five settings with their shapes', () => {
    expect(SETTINGS.map((s) => [s.name, s.N, s.V, s.K, s.D])).toEqual([
      ['beauty', 32768, 176450, 511, 256],
      ['ml20m', 131072, 15405, 511, 256],
      ['megamarket', 32768, 1661327, 255, 256],
      ['zvuk', 131072, 893022, 2047, 256],
      ['small-d', 65536, 100000, 511, 64],
    ]);
  });

  it('has anchors for every setting', () => {
    expect(Object.keys(ANCHORS).sort()).toEqual(SETTINGS.map((s) => s.name).sort());
    expect(ANCHORS.beauty).toEqual({ paper: { ms: 24.7, mib: 256 }, torchCeMinus: { ms: 36.1, mib: 16416 }, appleCce: { ms: 99.6 } });
    expect(ANCHORS.ml20m.torchCeMinus).toBeNull();
    expect(ANCHORS.zvuk.torchCeMinus).toBeNull();
    expect(ANCHORS.zvuk.paper).toEqual({ ms: 403, mib: 4098 });
    expect(ANCHORS.megamarket.torchCeMinus).toEqual({ ms: 19.7, mib: 8208 });
    expect(ANCHORS['small-d']).toEqual({ paper: { ms: 11.6, mib: 513 }, torchCeMinus: { ms: 41.0, mib: 8256 }, appleCce: { ms: 101 } });
    expect(ANCHORS.ml20m.appleCce.ms).toBe(34.3);
    expect(ANCHORS.megamarket.appleCce.ms).toBe(344);
  });

  it('the Python script has the same shapes', () => {
    const src = readFileSync(SCRIPT, 'utf8');
    for (const s of SETTINGS) expect(src).toContain(`"${s.name}": (${s.N}, ${s.V}, ${s.K}, ${s.D})`);
  });
});

describe('markdownTable', () => {
  it('names the card, shows p20–p80 and n/a for nulls', () => {
    const md = markdownTable(SAMPLE);
    const lines = md.trim().split('\n');
    expect(lines[0]).toBe('| setting | impl | dtype | ms (p20–p80) | peak MiB | card | note |');
    expect(lines).toHaveLength(2 + SAMPLE.length);
    expect(md).toContain(CARD);
    expect(md).toContain('36.50 (36.10–37.00)');
    expect(md).toMatch(/\| beauty \| torch-full-ce \| f16 \| n\/a \| n\/a \| .* \| needs ~65 GiB \|/);
    expect(md).toContain('| OOM |');
  });

  it('adds anchor rows with --anchors', () => {
    const md = markdownTable(SAMPLE, true);
    expect(md).toContain('paper-triton (anchor)');
    expect(md).toContain('| 24.70 |'); // paper beauty
    // ml20m has no torch CE- anchor: n/a.
    expect(md).toMatch(/\| ml20m \| torch-ce-minus \(anchor\) \| f16 \| n\/a \| n\/a \|/);
    // Only the settings that appear in the rows (beauty, ml20m, small-d).
    expect(md).not.toContain('megamarket');
  });
});

describe('plot', () => {
  it('renders a well-formed SVG with one <rect> per non-null bar', () => {
    const svg = renderSvg(SAMPLE);
    expect(svg).toContain('<svg');
    checkXml(svg);
    expect((svg.match(/<rect\b/g) ?? []).length).toBe(barCount(SAMPLE));
    expect(svg).toContain(CARD);
    // Nulls: two rows with both values null -> 4 n/a labels.
    expect((svg.match(/>n\/a<\/text>/g) ?? []).length).toBe(4);
    for (const impl of ['torch-ce-minus', 'torch-full-ce', 'ccekit-cuda']) expect(svg).toContain(`>${impl}</text>`);
  });

  it('draws anchors as series of their own', () => {
    const svg = renderSvg(SAMPLE, { anchors: true });
    checkXml(svg);
    const anchors = anchorRows(SETTINGS.filter((s) => ['beauty', 'ml20m', 'small-d'].includes(s.name)));
    expect((svg.match(/<rect\b/g) ?? []).length).toBe(barCount(SAMPLE) + barCount(anchors));
    expect(svg).toContain('>paper-triton (anchor)</text>');
    expect(svg).toContain('>apple-cce-full (anchor)</text>');
  });

  it('CLI writes the SVG and the markdown table', () => {
    const json = join(tmp, 'rows.json');
    const out = join(tmp, 'plot.svg');
    const md = join(tmp, 'table.md');
    writeFileSync(json, JSON.stringify(SAMPLE));
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/plot.ts', json, '--out', out, '--anchors', '--md', md], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    const svg = readFileSync(out, 'utf8');
    checkXml(svg);
    expect(svg).toContain('paper-triton (anchor)');
    expect(readFileSync(md, 'utf8')).toContain(CARD);
    const bad = spawnSync(process.execPath, ['--import', 'tsx', 'bench/plot.ts', json], { cwd: ROOT, encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/usage/);
  });
});

describe('torch_baseline.py', () => {
  const py = findPython();
  const tpy = findTorchPython();

  it('compiles (py_compile)', (t) => {
    if (skipTest(t, 'python3', !!py)) return;
    const cfile = join(tmp, 'torch_baseline.pyc');
    const compile = 'import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)';
    const r = spawnSync(must('python3', py), ['-c', compile, SCRIPT, cfile], {
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(cfile)).toBe(true);
  });

  it('--check runs CE- forward+backward on the CPU and matches a per-row loop', (t) => {
    if (skipTest(t, TORCH_PYTHON, !!tpy)) return;
    const r = spawnSync(must(TORCH_PYTHON, tpy), ['-B', SCRIPT, '--check'], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/check float32: loss \d+\.\d+ .*: ok/);
    expect(r.stdout).toMatch(/check ok$/m);
  });
});
