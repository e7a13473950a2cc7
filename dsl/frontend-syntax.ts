// The ts-morph front end's shared parts: its error, options and project; IR builders and the tables of
// accepted TypeScript operators and Math members; syntax-tree helpers (see dsl/frontend.ts).
import { Node, Project, SyntaxKind } from 'ts-morph';
import type { BinFn, Expr, UnFn } from '../codegen/ir.js';

/** A transform / correction the front end cannot compile; the message starts with `file:line:col: `. */
export class FrontendError extends Error {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  constructor(file: string, line: number, column: number, message: string) {
    super(`${file}:${line}:${column}: ${message}`);
    this.name = 'FrontendError';
    this.file = file;
    this.line = line;
    this.column = column;
  }
}

let project: Project | undefined;
// noLib: only the syntax tree is used (no type checker), so the default library is never loaded.
export const getProject = (): Project =>
  (project ??= new Project({
    useInMemoryFileSystem: true,
    compilerOptions: { strict: true, noLib: true },
  }));

export interface FrontendOptions {
  /** Values for free names (closure variables such as a soft-cap constant). */
  constants?: Record<string, number>;
  /** Name of the function in a source file (for compileScalarSource). */
  name?: string;
  /** Required number of parameters; another count is an error naming the function's location. */
  arity?: number;
  /** What the function is used as, for messages ('transform', 'correction'); default 'scalar function'. */
  role?: string;
}

export const C = (v: number): Expr => ({ op: 'const', t: 'f32', s: 'uniform', v });
export const bin = (fn: BinFn, a: Expr, b: Expr, t: Expr['t'] = 'f32'): Expr =>
  ({ op: 'bin', fn, t, s: 'uniform', a, b });
export const un = (fn: UnFn, a: Expr): Expr => ({ op: 'un', fn, t: fn === 'not' ? 'bool' : 'f32', s: 'uniform', a });

export const MATH_CONSTANTS: Record<string, number> = {
  'Math.PI': Math.PI,
  'Math.E': Math.E,
  'Math.LN2': Math.LN2,
  'Math.LN10': Math.LN10,
  'Math.LOG2E': Math.LOG2E,
  'Math.LOG10E': Math.LOG10E,
  'Math.SQRT2': Math.SQRT2,
  'Math.SQRT1_2': Math.SQRT1_2,
};
export const MATH_ONE: Record<string, UnFn> = {
  'Math.exp': 'exp',
  'Math.log': 'log',
  'Math.log1p': 'log1p',
  'Math.tanh': 'tanh',
  'Math.sqrt': 'sqrt',
  'Math.abs': 'abs',
};
export const MATH_TWO: Record<string, BinFn> = { 'Math.max': 'max', 'Math.min': 'min', 'Math.pow': 'pow' };
export const MATH_FNS = [...Object.keys(MATH_ONE), ...Object.keys(MATH_TWO)].join(', ');

export const ARITH: Partial<Record<SyntaxKind, BinFn>> = {
  [SyntaxKind.PlusToken]: 'add',
  [SyntaxKind.MinusToken]: 'sub',
  [SyntaxKind.AsteriskToken]: 'mul',
  [SyntaxKind.SlashToken]: 'div',
  [SyntaxKind.AsteriskAsteriskToken]: 'pow',
};
export const CMP: Partial<Record<SyntaxKind, BinFn>> = {
  [SyntaxKind.LessThanToken]: 'lt',
  [SyntaxKind.LessThanEqualsToken]: 'le',
  [SyntaxKind.GreaterThanToken]: 'gt',
  [SyntaxKind.GreaterThanEqualsToken]: 'ge',
  [SyntaxKind.EqualsEqualsEqualsToken]: 'eq',
  [SyntaxKind.ExclamationEqualsEqualsToken]: 'ne',
  [SyntaxKind.EqualsEqualsToken]: 'eq',
  [SyntaxKind.ExclamationEqualsToken]: 'ne',
};

export const LOOPS = new Set([
  SyntaxKind.ForStatement,
  SyntaxKind.ForInStatement,
  SyntaxKind.ForOfStatement,
  SyntaxKind.WhileStatement,
  SyntaxKind.DoStatement,
]);

/** Strips parentheses, `as` / `satisfies` casts and `!`. */
export function unwrap(n: Node): Node {
  for (;;) {
    if (Node.isParenthesizedExpression(n) || Node.isAsExpression(n) || Node.isNonNullExpression(n)) {
      n = n.getExpression();
    } else if (Node.isSatisfiesExpression(n)) n = n.getExpression();
    else return n;
  }
}

export type FnNode = import('ts-morph').ArrowFunction | import('ts-morph').FunctionDeclaration
  | import('ts-morph').FunctionExpression;

export const isFn = (n: Node): n is FnNode =>
  Node.isArrowFunction(n) || Node.isFunctionDeclaration(n) || Node.isFunctionExpression(n);

/** A top-level declaration that a name in a function body may refer to. */
export type ModuleDecl =
  | { kind: 'const'; decl: import('ts-morph').VariableDeclaration }
  | { kind: 'let' | 'var'; decl: import('ts-morph').VariableDeclaration }
  | { kind: 'import' | 'function' | 'class' | 'enum' | 'namespace'; decl: Node };

export function hasExport(n: Node): boolean {
  const s = Node.isVariableDeclaration(n) ? n.getVariableStatement() : n;
  return !!s && Node.isExportable(s) && s.hasExportKeyword();
}
