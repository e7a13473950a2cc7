// ts-morph front end: plain TypeScript scalar functions → IR expressions (dsl/scalarfn.ts ScalarFn).
//
// Accepted: an arrow function or function declaration whose parameters are numbers, with an expression
// body or a block of `const` declarations and one final `return`. Expressions: number literals, names of
// parameters / locals / supplied constants / module-level `const` numbers, + - * / **, unary - and +,
// parentheses, `c ? a : b` with comparisons and && || !, Math.exp/log/log1p/tanh/sqrt/abs/max/min/pow and the
// Math constants. A module-level const must be a compile-time number: literals, Math constants, other such
// consts and the operators and Math functions above (cycles are refused).
// Anything else is a FrontendError whose message starts with `file:line:col:` and names the construct; a file
// with a syntax error is refused with TypeScript's own message before anything else is looked at.
import type { SourceFile } from 'ts-morph';
import type { ScalarFn } from './scalarfn.js';
import { Context } from './frontend-context.js';
import { type FrontendOptions, getProject, unwrap } from './frontend-syntax.js';

export { FrontendError, type FrontendOptions } from './frontend-syntax.js';

const INLINE_PREFIX = 'const __f = ';

/** Compile a function value (its source text through Function.prototype.toString). */
export function compileScalarFunction(
  fn: ((...args: number[]) => number) | string,
  opts: FrontendOptions = {},
): ScalarFn {
  const text = typeof fn === 'string' ? fn : fn.toString();
  const file = `inline_${Math.abs(hash(text)).toString(36)}.ts`;
  const sf = getProject().createSourceFile(file, `${INLINE_PREFIX}${text};\n`, { overwrite: true });
  try {
    const cx = new Context(sf, '<inline function>', INLINE_PREFIX.length, opts, false);
    cx.checkSyntax();
    const init = sf.getVariableDeclarationOrThrow('__f').getInitializerOrThrow();
    return cx.compileFunction(unwrap(init), opts.name ?? 'fn');
  } finally {
    getProject().removeSourceFile(sf);
  }
}

/** Compile an exported function from a TS source file on disk or given as text. */
export function compileScalarSource(path: string, text: string, name: string, opts: FrontendOptions = {}): ScalarFn {
  const sf: SourceFile = getProject().createSourceFile(path, text, { overwrite: true });
  try {
    const cx = new Context(sf, path, 0, opts, true);
    cx.checkSyntax();
    const fnNode = cx.findExported(name);
    return cx.compileFunction(fnNode, name);
  } finally {
    getProject().removeSourceFile(sf);
  }
}

function hash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
  return h;
}
