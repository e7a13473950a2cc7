// Passes over a lowered body: merging vec regions, telling per-lane arrays from region temporaries, and
// marking the atomic adds of rows shared by a program's row slots.
import { type Expr, children } from './ir.js';
import type { LStmt, LoweredKernel, SymbolInfo } from './lower.js';
import { type DeviceCaps, sharedBytes, traitsOf } from './target.js';

export function refs(e: Expr, out: Set<string>): Set<string> {
  if (e.op === 'ref') out.add(e.name);
  for (const c of children(e)) refs(c, out);
  return out;
}

/**
 * Targets with rowSharedAtomics (SIMT): an atomic add of a whole row whose index is uniform (the same row for
 * every row slot of the program, as with shared candidates) is marked rowShared = k: the printer sums the row
 * slots' values in workgroup memory and adds the sum once per element, so the program makes one atomic update
 * where it made `rows`. Left unmarked when the program has one row or the scratch does not fit next to the
 * reductions'.
 */
export function markRowShared(lk: LoweredKernel, caps: DeviceCaps): void {
  if (!traitsOf(caps).rowSharedAtomics || lk.schedule.rows === 1) return;
  const regions: LStmt[][] = [];
  const walk = (b: LStmt[]) =>
    b.forEach((s) => (s.k === 'vec' ? regions.push(s.body) : s.k === 'for' && walk(s.body)));
  walk(lk.body);
  const shared = (s: LStmt) =>
    s.k === 'atomicAdd' && !!s.row && s.row.base.s === 'uniform' && (!s.row.mask || s.row.mask.s === 'uniform');
  const most = Math.max(0, ...regions.map((r) => r.filter(shared).length));
  const slots = most * lk.schedule.rows * lk.blockD;
  if (!most || sharedBytes(lk, caps) + slots * 4 > caps.maxSharedBytes) return;
  for (const r of regions) {
    let k = 0;
    for (const s of r) if (shared(s)) (s as { rowShared?: number }).rowShared = k++;
  }
  lk.rowSharedSlots = slots;
}

/** Merge adjacent vec regions; constant-initialised row declarations between two regions move above them. */
/**
 * The body of two merged regions, each accumulation of the second moved up to just after the last statement it
 * shares a name with: a gather's use follows it (load, accumulate, load, accumulate), and ptxas keeps fewer values
 * live than with all the loads first, while the loads stay in one region (in flight together).
 */
function interleave(first: LStmt[], second: LStmt[]): LStmt[] {
  const out = [...first];
  for (const s of second) {
    let at = out.length;
    if (s.k === 'accum') {
      const names = stmtNames(s);
      while (at > 0 && ![...stmtNames(out[at - 1]!)].some((n) => names.has(n))) at--;
    }
    out.splice(at, 0, s);
  }
  return out;
}

export function mergeRegions(body: LStmt[]): LStmt[] {
  const out: LStmt[] = [];
  for (const s of body) {
    if (s.k !== 'vec') {
      out.push(s);
      continue;
    }
    // Find the last region, skipping over movable declarations.
    let i = out.length - 1;
    const movable = (x: LStmt) => x.k === 'decl' && x.init?.op === 'const' && x.s !== 'vec';
    while (i >= 0 && movable(out[i])) i--;
    if (i >= 0 && out[i].k === 'vec') {
      const moved = out.splice(i + 1);
      const region = out.pop() as LStmt & { k: 'vec' };
      out.push(...moved, { k: 'vec', body: interleave(region.body, s.body) });
    } else out.push(s);
  }
  return out;
}

/** A vec name defined and used inside one region only is a temporary (a scalar per element on SIMT). */
export function markTemporaries(body: LStmt[], symbols: Map<string, SymbolInfo>): void {
  const seen = new Map<string, Set<number>>();
  let regions = 0;
  const walk = (b: LStmt[], region: number) => {
    for (const s of b) {
      if (s.k === 'vec') walk(s.body, ++regions);
      else if (s.k === 'for') walk(s.body, region);
      else
        for (const name of stmtNames(s)) {
          if (symbols.get(name)?.s !== 'vec') continue;
          if (!seen.has(name)) seen.set(name, new Set());
          seen.get(name)!.add(region);
        }
    }
  };
  walk(body, -1);
  for (const [name, where] of seen) symbols.get(name)!.array = where.size > 1;
}

/** Names a (non-compound) lowered statement defines or reads. */
export function stmtNames(s: LStmt): Set<string> {
  const out = new Set<string>();
  const add = (e: Expr | undefined) => e && refs(e, out);
  switch (s.k) {
    case 'decl':
      out.add(s.name);
      add(s.init);
      break;
    case 'assign':
      out.add(s.name);
      add(s.value);
      break;
    case 'load':
      out.add(s.name);
      add(s.index);
      add(s.mask);
      break;
    case 'store':
    case 'atomicAdd':
      add(s.index);
      add(s.value);
      add(s.mask);
      if (s.k === 'atomicAdd' && s.old) out.add(s.old);
      break;
    case 'accum':
      out.add(s.target);
      add(s.value);
      break;
    case 'laneReduce':
      s.targets.forEach((t) => out.add(t));
      break;
    default:
      break;
  }
  return out;
}
