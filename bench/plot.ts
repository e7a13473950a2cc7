// Bench plots and tables.
//
//   npx tsx bench/plot.ts bench/results/A.json [B.json ...] --out bench/results/plot.svg [--anchors] [--md bench/results/table.md] [--title TEXT]
//
// Reads BenchRow JSON lists and writes an SVG with two grouped bar charts side by side (log-scale y): time
// (ms) and extra memory (MiB) per setting, one colour per impl, a legend, and a title naming the card(s).
// --anchors adds the numbers measured by others (ANCHORS in bench/settings.ts) as rows of their own.
// Null values are drawn as an 'n/a' label. The SVG is written by hand here (no dependency): only the bars
// are <rect> elements.
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type BenchRow, SETTINGS, anchorRows } from './settings.js';

// ------------------------------------------------------------------------------------------------
// Rows

export function readRows(files: string[]): BenchRow[] {
  const rows: BenchRow[] = [];
  for (const f of files) {
    let data: unknown;
    try {
      data = JSON.parse(readFileSync(f, 'utf8'));
    } catch (e) {
      throw new Error(`${f}: ${(e as Error).message}`);
    }
    if (!Array.isArray(data)) throw new Error(`${f}: expected a JSON list of bench rows`);
    data.forEach((r, i) => {
      if (typeof r !== 'object' || r === null || typeof r.impl !== 'string' || typeof r.setting !== 'string') {
        throw new Error(`${f}[${i}]: not a bench row (needs impl and setting)`);
      }
      rows.push({ ...r, ms: numOrNull(r.ms), peak_mib: numOrNull(r.peak_mib), card: String(r.card ?? '?'), dtype: String(r.dtype ?? '?') });
    });
  }
  return rows;
}

function numOrNull(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** The rows plus, when `anchors`, the anchor rows of the settings that appear (of all settings when none do). */
function withAnchors(rows: BenchRow[], anchors: boolean | undefined): BenchRow[] {
  if (!anchors) return rows;
  const present = new Set(rows.map((r) => r.setting));
  const settings = present.size ? SETTINGS.filter((s) => present.has(s.name)) : SETTINGS;
  return [...rows, ...anchorRows(settings)];
}

/** Setting names in SETTINGS order first, then any others in order of appearance. */
function settingOrder(rows: BenchRow[]): string[] {
  const present = new Set(rows.map((r) => r.setting));
  const out = SETTINGS.map((s) => s.name).filter((n) => present.has(n));
  for (const r of rows) if (!out.includes(r.setting)) out.push(r.setting);
  return out;
}

function sortRows(rows: BenchRow[]): BenchRow[] {
  const order = settingOrder(rows);
  return rows
    .map((r, i) => ({ r, i }))
    .sort((a, b) => order.indexOf(a.r.setting) - order.indexOf(b.r.setting) || a.i - b.i)
    .map((x) => x.r);
}

// ------------------------------------------------------------------------------------------------
// Markdown

function fmtNum(v: number): string {
  if (v >= 1000) return v.toFixed(0);
  if (v >= 100) return Number.isInteger(v) ? String(v) : v.toFixed(1);
  if (v >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

function mdCell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** A markdown table of bench rows: setting, impl, dtype, ms (p20–p80), peak MiB, card, note; 'n/a' for nulls. */
export function markdownTable(rows: BenchRow[], anchors?: boolean): string {
  const all = sortRows(withAnchors(rows, anchors));
  const lines = ['| setting | impl | dtype | ms (p20–p80) | peak MiB | card | note |', '|---|---|---|---:|---:|---|---|'];
  for (const r of all) {
    let ms = 'n/a';
    if (r.ms !== null) {
      ms = fmtNum(r.ms);
      if (typeof r.p20 === 'number' && typeof r.p80 === 'number') ms += ` (${fmtNum(r.p20)}–${fmtNum(r.p80)})`;
    }
    const mib = r.peak_mib === null ? 'n/a' : fmtNum(r.peak_mib);
    const cells = [r.setting, r.impl, r.dtype, ms, mib, r.card, r.note ?? ''];
    lines.push(`| ${cells.map(mdCell).join(' | ')} |`);
  }
  return lines.join('\n') + '\n';
}

// ------------------------------------------------------------------------------------------------
// SVG

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
const ANCHOR_PALETTE = ['#6b6b6b', '#a0a0a0', '#c8b68a', '#8aa8c8'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmtCompact(v: number): string {
  if (v >= 10000) return `${(v / 1000).toFixed(0)}k`;
  if (v >= 1000) return `${(v / 1000).toFixed(1)}k`;
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toPrecision(2);
}

function fmtCount(v: number): string {
  if (v >= 1e6) return `${+(v / 1e6).toFixed(2)}M`;
  if (v >= 1e3) return `${+(v / 1e3).toFixed(0)}k`;
  return String(v);
}

export interface SvgOptions {
  anchors?: boolean;
  title?: string;
}

interface Series {
  key: string;
  label: string;
  color: string;
}

/** The SVG document for the rows (see the file comment). Only the bars are <rect> elements. */
export function renderSvg(rowsIn: BenchRow[], opts: SvgOptions = {}): string {
  const rows = withAnchors(rowsIn, opts.anchors);
  const settings = settingOrder(rows);
  const dtypes = new Set(rows.filter((r) => !r.impl.includes('(anchor)')).map((r) => r.dtype));
  const keyOf = (r: BenchRow) => (dtypes.size > 1 && !r.impl.includes('(anchor)') ? `${r.impl} (${r.dtype})` : r.impl);

  // Series in order of appearance, measured first, anchors last.
  const series: Series[] = [];
  const ordered = [...rows.filter((r) => !r.impl.includes('(anchor)')), ...rows.filter((r) => r.impl.includes('(anchor)'))];
  let nMeasured = 0;
  let nAnchor = 0;
  for (const r of ordered) {
    const key = keyOf(r);
    if (series.some((s) => s.key === key)) continue;
    const anchor = r.impl.includes('(anchor)');
    const color = anchor ? ANCHOR_PALETTE[nAnchor++ % ANCHOR_PALETTE.length] : PALETTE[nMeasured++ % PALETTE.length];
    series.push({ key, label: key, color });
  }
  const cell = new Map<string, BenchRow>(); // `${setting}\u0000${key}` -> row (the last one wins)
  for (const r of rows) cell.set(`${r.setting}\u0000${keyOf(r)}`, r);
  const shapes = new Map<string, BenchRow>();
  for (const r of rows) if (!shapes.has(r.setting)) shapes.set(r.setting, r);

  const cards = [...new Set(rows.map((r) => r.card).filter((c) => c && !c.includes('(anchor)')))];
  const title =
    opts.title ??
    `CCE- forward+backward per setting on ${cards.length ? cards.join(', ') : 'no measured card'}` +
      (opts.anchors ? ' (anchors: H100, measured by others)' : '');

  // Geometry.
  const barW = 14;
  const groupGap = 22;
  const groupW = Math.max(series.length * barW + groupGap, 90);
  const plotW = Math.max(settings.length, 1) * groupW;
  const plotH = 300;
  const left = 72;
  const right = 24;
  const panelW = left + plotW + right;
  const top = 64;
  const xLabelH = 46;
  const legendCols = Math.max(1, Math.floor((2 * panelW) / 240));
  const legendRows = Math.ceil(series.length / legendCols);
  const width = 2 * panelW;
  const height = top + plotH + xLabelH + 24 + legendRows * 20 + 16;

  const out: string[] = [];
  out.push(`<?xml version="1.0" encoding="UTF-8"?>`);
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="11">`,
  );
  out.push(`<path d="M0 0H${width}V${height}H0Z" fill="#ffffff"/>`);
  out.push(`<text x="${width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`);

  const panels: { name: string; unit: string; get: (r: BenchRow) => number | null }[] = [
    { name: 'time', unit: 'ms (median, log scale)', get: (r) => r.ms },
    { name: 'extra memory', unit: 'peak MiB (log scale)', get: (r) => r.peak_mib },
  ];
  panels.forEach((panel, pi) => {
    const x0 = pi * panelW + left;
    const values = rows.map(panel.get).filter((v): v is number => v !== null && v > 0);
    let lo = values.length ? Math.floor(Math.log10(Math.min(...values))) : 0;
    let hi = values.length ? Math.ceil(Math.log10(Math.max(...values)) + 0.3) : 1; // headroom for value labels
    if (hi <= lo) hi = lo + 1;
    if (values.length && Math.log10(Math.min(...values)) - lo < 0.15) lo -= 1; // keep the shortest bar visible
    const y = (v: number) => top + plotH - ((Math.log10(v) - lo) / (hi - lo)) * plotH;

    out.push(`<g class="panel" data-panel="${esc(panel.name)}">`);
    out.push(`<text x="${x0 + plotW / 2}" y="${top - 18}" text-anchor="middle" font-size="13">${esc(`${panel.name}: ${panel.unit}`)}</text>`);
    // Grid and y axis (decades, with 2 and 5 as faint lines).
    for (let e = lo; e <= hi; e++) {
      const yy = y(10 ** e);
      out.push(`<path d="M${x0} ${yy.toFixed(1)}H${x0 + plotW}" stroke="#cccccc" stroke-width="1"/>`);
      out.push(`<text x="${x0 - 6}" y="${(yy + 4).toFixed(1)}" text-anchor="end">${esc(fmtCompact(10 ** e))}</text>`);
      if (e < hi) {
        for (const m of [2, 5]) {
          const ym = y(m * 10 ** e);
          out.push(`<path d="M${x0} ${ym.toFixed(1)}H${x0 + plotW}" stroke="#eeeeee" stroke-width="1"/>`);
        }
      }
    }
    out.push(`<path d="M${x0} ${top}V${top + plotH}H${x0 + plotW}" stroke="#333333" fill="none" stroke-width="1"/>`);

    settings.forEach((s, gi) => {
      const gx = x0 + gi * groupW + (groupW - series.length * barW) / 2;
      series.forEach((ser, si) => {
        const r = cell.get(`${s}\u0000${ser.key}`);
        if (!r) return;
        const bx = gx + si * barW;
        const cx = bx + barW / 2;
        const v = panel.get(r);
        if (v !== null && v > 0) {
          const by = Math.min(y(v), top + plotH - 1);
          const bh = top + plotH - by;
          const tip = `${ser.label} / ${s}: ${fmtNum(v)} ${pi === 0 ? 'ms' : 'MiB'}${r.note ? ` (${r.note})` : ''}`;
          out.push(
            `<rect class="bar" x="${(bx + 1).toFixed(1)}" y="${by.toFixed(1)}" width="${barW - 2}" height="${bh.toFixed(1)}" fill="${ser.color}"><title>${esc(tip)}</title></rect>`,
          );
          out.push(
            `<text x="${cx.toFixed(1)}" y="${(by - 3).toFixed(1)}" font-size="9" transform="rotate(-90 ${cx.toFixed(1)} ${(by - 3).toFixed(1)})" dy="3">${esc(fmtCompact(v))}</text>`,
          );
        } else {
          const ly = top + plotH - 4;
          const tip = `${ser.label} / ${s}: n/a${r.note ? ` (${r.note})` : ''}`;
          out.push(
            `<text class="na" x="${cx.toFixed(1)}" y="${ly}" font-size="9" fill="${ser.color}" transform="rotate(-90 ${cx.toFixed(1)} ${ly})" dy="3"><title>${esc(tip)}</title>n/a</text>`,
          );
        }
      });
      const shape = shapes.get(s);
      const lx = x0 + gi * groupW + groupW / 2;
      out.push(`<text x="${lx}" y="${top + plotH + 16}" text-anchor="middle" font-size="12">${esc(s)}</text>`);
      if (shape) {
        const sub = `N ${fmtCount(shape.N)} V ${fmtCount(shape.V)}`;
        const sub2 = `K ${shape.K} D ${shape.D}`;
        out.push(`<text x="${lx}" y="${top + plotH + 29}" text-anchor="middle" font-size="9" fill="#555555">${esc(sub)}</text>`);
        out.push(`<text x="${lx}" y="${top + plotH + 40}" text-anchor="middle" font-size="9" fill="#555555">${esc(sub2)}</text>`);
      }
    });
    out.push(`</g>`);
  });

  // Legend (swatches are paths, so that only bars are <rect>).
  const ly0 = top + plotH + xLabelH + 20;
  const colW = width / legendCols;
  out.push(`<g class="legend">`);
  series.forEach((ser, i) => {
    const lx = 16 + (i % legendCols) * colW;
    const ly = ly0 + Math.floor(i / legendCols) * 20;
    out.push(`<path d="M${lx} ${ly - 10}h12v12h-12Z" fill="${ser.color}"/>`);
    out.push(`<text x="${lx + 18}" y="${ly}">${esc(ser.label)}</text>`);
  });
  out.push(`</g>`);
  out.push(`</svg>`);
  return out.join('\n') + '\n';
}

// ------------------------------------------------------------------------------------------------
// CLI

function usage(): never {
  process.stderr.write(
    'usage: npx tsx bench/plot.ts FILE.json [FILE.json ...] --out PLOT.svg [--anchors] [--md TABLE.md] [--title TEXT]\n',
  );
  process.exit(2);
}

export function main(argv: string[]): void {
  const files: string[] = [];
  let out: string | undefined;
  let md: string | undefined;
  let title: string | undefined;
  let anchors = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--out') out = argv[++i];
    else if (a === '--md') md = argv[++i];
    else if (a === '--title') title = argv[++i];
    else if (a === '--anchors') anchors = true;
    else if (a === '-h' || a === '--help') usage();
    else if (a.startsWith('--')) {
      process.stderr.write(`plot: unknown option ${a}\n`);
      usage();
    } else files.push(a);
  }
  if (!out || files.length === 0) usage();
  const rows = readRows(files);
  writeFileSync(out, renderSvg(rows, { anchors, title }));
  process.stdout.write(`plot: ${rows.length} rows -> ${out}\n`);
  if (md) {
    writeFileSync(md, markdownTable(rows, anchors));
    process.stdout.write(`plot: table -> ${md}\n`);
  }
}

function isEntry(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntry()) {
  try {
    main(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`plot: ${(e as Error).message}\n`);
    process.exit(2);
  }
}
