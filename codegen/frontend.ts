// ts-morph front end: plain TypeScript scalar functions → IR expressions (dsl/scalarfn.ts ScalarFn).
//
// Accepted: an arrow function or function declaration whose parameters are numbers, with an expression
// body or a block of `const` declarations and one final `return`. Expressions: number literals, names of
// parameters / locals / supplied constants, + - * / **, unary - and +, parentheses, `c ? a : b` with
// comparisons and && || !, Math.exp/log/log1p/tanh/sqrt/abs/max/min/pow, Math.PI / Math.E.
// Anything else is an error naming file:line and the construct.
import { Node, Project, SyntaxKind, type SourceFile } from 'ts-morph';
import type { BinFn, Expr, UnFn } from './ir.js';
import { argRef, type ScalarFn } from '../dsl/scalarfn.js';

export class FrontendError extends Error {}

let project: Project | undefined;
const getProject = () => (project ??= new Project({ useInMemoryFileSystem: true, compilerOptions: { strict: true } }));

export interface FrontendOptions {
  /** Values for free names (closure variables such as a soft-cap constant). */
  constants?: Record<string, number>;
  /** Name of the function in a source file (for compileScalarSource). */
  name?: string;
}

/** Compile a function value (its source text through Function.prototype.toString). */
export function compileScalarFunction(fn: ((...args: number[]) => number) | string, opts: FrontendOptions = {}): ScalarFn {
  const text = typeof fn === 'string' ? fn : fn.toString();
  const file = `inline_${Math.abs(hash(text)).toString(36)}.ts`;
  const sf = getProject().createSourceFile(file, `const __f = ${text};\n`, { overwrite: true });
  try {
    const init = sf.getVariableDeclarationOrThrow('__f').getInitializerOrThrow();
    return fromNode(init, `<inline function>`, opts, 0);
  } finally {
    getProject().removeSourceFile(sf);
  }
}

/** Compile an exported function from a TS source file on disk or given as text. */
export function compileScalarSource(path: string, text: string, name: string, opts: FrontendOptions = {}): ScalarFn {
  const sf: SourceFile = getProject().createSourceFile(path, text, { overwrite: true });
  try {
    const decl = sf.getFunction(name) ?? sf.getVariableDeclaration(name)?.getInitializer();
    if (!decl) throw new FrontendError(`${path}:1: no function named '${name}'`);
    return fromNode(decl, path, opts, 0);
  } finally {
    getProject().removeSourceFile(sf);
  }
}

function hash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
  return h;
}

const C = (v: number): Expr => ({ op: 'const', t: 'f32', s: 'uniform', v });

function fromNode(node: Node, file: string, opts: FrontendOptions, lineOffset: number): ScalarFn {
  const where = (n: Node) => `${file}:${n.getStartLineNumber() + lineOffset}`;
  const fail = (n: Node, msg: string): never => {
    throw new FrontendError(`${where(n)}: ${msg}: \`${n.getText().slice(0, 60)}\``);
  };
  if (!Node.isArrowFunction(node) && !Node.isFunctionDeclaration(node) && !Node.isFunctionExpression(node))
    fail(node, 'expected an arrow function or a function');
  const fnNode = node as Node & { getParameters(): Node[]; getBody(): Node | undefined };
  const args: string[] = [];
  for (const p of fnNode.getParameters()) {
    if (!Node.isParameterDeclaration(p)) fail(p, 'unsupported parameter');
    const pd = p as import('ts-morph').ParameterDeclaration;
    if (pd.getInitializer() || pd.isRestParameter() || !Node.isIdentifier(pd.getNameNode())) fail(p, 'parameters must be plain names');
    const tn = pd.getTypeNode();
    if (tn && tn.getText() !== 'number') fail(tn, 'parameters must be numbers');
    args.push(pd.getName());
  }
  const env = new Map<string, Expr>();
  for (const a of args) env.set(a, argRef(a));
  for (const [k, v] of Object.entries(opts.constants ?? {})) if (!env.has(k)) env.set(k, C(v));

  const bin = (fn: BinFn, a: Expr, b: Expr, t: Expr['t'] = 'f32'): Expr => ({ op: 'bin', fn, t, s: 'uniform', a, b });
  const un = (fn: UnFn, a: Expr): Expr => ({ op: 'un', fn, t: fn === 'not' ? 'bool' : 'f32', s: 'uniform', a });
  const num = (n: Node, e: Expr): Expr => (e.t === 'f32' ? e : fail(n, 'expected a number, got a condition'));
  const cond = (n: Node, e: Expr): Expr => (e.t === 'bool' ? e : fail(n, 'expected a condition (a comparison)'));

  const expr = (n: Node): Expr => {
    if (Node.isParenthesizedExpression(n) || Node.isAsExpression(n) || Node.isNonNullExpression(n)) return expr(n.getExpression());
    if (Node.isNumericLiteral(n)) return C(n.getLiteralValue());
    if (Node.isIdentifier(n)) {
      const v = env.get(n.getText());
      if (!v) fail(n, `unknown name '${n.getText()}' (pass it in options.constants)`);
      return v!;
    }
    if (Node.isPrefixUnaryExpression(n)) {
      const op = n.getOperatorToken();
      const a = expr(n.getOperand());
      if (op === SyntaxKind.MinusToken) return un('neg', num(n, a));
      if (op === SyntaxKind.PlusToken) return num(n, a);
      if (op === SyntaxKind.ExclamationToken) return un('not', cond(n, a));
      fail(n, 'unsupported unary operator');
    }
    if (Node.isBinaryExpression(n)) {
      const a = expr(n.getLeft());
      const b = expr(n.getRight());
      const kind = n.getOperatorToken().getKind();
      const arith: Partial<Record<SyntaxKind, BinFn>> = {
        [SyntaxKind.PlusToken]: 'add',
        [SyntaxKind.MinusToken]: 'sub',
        [SyntaxKind.AsteriskToken]: 'mul',
        [SyntaxKind.SlashToken]: 'div',
        [SyntaxKind.AsteriskAsteriskToken]: 'pow',
      };
      const cmp: Partial<Record<SyntaxKind, BinFn>> = {
        [SyntaxKind.LessThanToken]: 'lt',
        [SyntaxKind.LessThanEqualsToken]: 'le',
        [SyntaxKind.GreaterThanToken]: 'gt',
        [SyntaxKind.GreaterThanEqualsToken]: 'ge',
        [SyntaxKind.EqualsEqualsEqualsToken]: 'eq',
        [SyntaxKind.ExclamationEqualsEqualsToken]: 'ne',
      };
      if (arith[kind]) return bin(arith[kind]!, num(n, a), num(n, b));
      if (cmp[kind]) return bin(cmp[kind]!, num(n, a), num(n, b), 'bool');
      if (kind === SyntaxKind.AmpersandAmpersandToken) return bin('and', cond(n, a), cond(n, b), 'bool');
      if (kind === SyntaxKind.BarBarToken) return bin('or', cond(n, a), cond(n, b), 'bool');
      fail(n, `unsupported operator '${n.getOperatorToken().getText()}'`);
    }
    if (Node.isConditionalExpression(n)) {
      const c = cond(n, expr(n.getCondition()));
      const a = num(n, expr(n.getWhenTrue()));
      const b = num(n, expr(n.getWhenFalse()));
      return { op: 'select', t: 'f32', s: 'uniform', c, a, b };
    }
    if (Node.isPropertyAccessExpression(n)) {
      const t = n.getText();
      if (t === 'Math.PI') return C(Math.PI);
      if (t === 'Math.E') return C(Math.E);
      if (t === 'Math.LN2') return C(Math.LN2);
      fail(n, 'unsupported property');
    }
    if (Node.isCallExpression(n)) {
      const callee = n.getExpression().getText();
      const as = n.getArguments().map((x) => num(x, expr(x)));
      const one: Record<string, UnFn> = { 'Math.exp': 'exp', 'Math.log': 'log', 'Math.log1p': 'log1p', 'Math.tanh': 'tanh', 'Math.sqrt': 'sqrt', 'Math.abs': 'abs' };
      if (one[callee]) {
        if (as.length !== 1) fail(n, `${callee} takes one argument`);
        return un(one[callee], as[0]);
      }
      const two: Record<string, BinFn> = { 'Math.max': 'max', 'Math.min': 'min', 'Math.pow': 'pow' };
      if (two[callee]) {
        if (as.length !== 2) fail(n, `${callee} takes two arguments`);
        return bin(two[callee], as[0], as[1]);
      }
      fail(n, `unsupported call '${callee}'`);
    }
    return fail(n, `unsupported syntax (${n.getKindName()})`);
  };

  const body = fnNode.getBody();
  if (!body) return fail(node, 'function has no body');
  let result: Expr | undefined;
  if (Node.isBlock(body)) {
    const stmts = body.getStatements();
    stmts.forEach((s, i) => {
      if (Node.isVariableStatement(s)) {
        if (s.getDeclarationKind() !== 'const') fail(s, 'only const declarations are supported');
        for (const d of s.getDeclarations()) {
          if (!Node.isIdentifier(d.getNameNode())) fail(d, 'destructuring is not supported');
          const init = d.getInitializer();
          if (!init) fail(d, 'a const needs a value');
          env.set(d.getName(), num(d, expr(init!)));
        }
      } else if (Node.isReturnStatement(s)) {
        if (i !== stmts.length - 1) fail(s, 'return must be the last statement');
        const e = s.getExpression();
        if (!e) fail(s, 'return needs a value');
        result = num(s, expr(e!));
      } else fail(s, `unsupported statement (${s.getKindName()})`);
    });
    if (!result) fail(body, 'missing return');
  } else result = num(body, expr(body));
  const name = Node.isFunctionDeclaration(node) ? node.getName() ?? 'fn' : opts.name ?? 'fn';
  return { name, args, body: result!, origin: where(node) };
}
