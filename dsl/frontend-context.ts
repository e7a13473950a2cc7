// The ts-morph front end's compiler: one source file's function → an IR expression (see dsl/frontend.ts).
import { Node, type SourceFile, SyntaxKind, ts } from 'ts-morph';
import type { Expr } from '../codegen/ir.js';
import { argRef, evalScalarFn, type ScalarFn } from './scalarfn.js';
import {
  ARITH, C, CMP, type FnNode, FrontendError, type FrontendOptions, LOOPS, MATH_CONSTANTS, MATH_FNS, MATH_ONE, MATH_TWO,
  type ModuleDecl, bin, getProject, hasExport, isFn, un, unwrap,
} from './frontend-syntax.js';

/** One compilation: the source file, how to print locations, the module-level names. */
export class Context {
  private readonly moduleDecls = new Map<string, ModuleDecl>();
  /** Module-level consts: their value once known, or 'resolving' while their initializer is compiled. */
  private readonly moduleValues = new Map<string, number | 'resolving'>();
  private readonly resolving: string[] = [];

  constructor(
    private readonly sf: SourceFile,
    private readonly file: string,
    /** Characters of wrapper text before the user's code on line 1. */
    private readonly firstLineShift: number,
    private readonly opts: FrontendOptions,
    /** A real source file (module-level names resolve; messages do not mention options.constants). */
    private readonly isModule: boolean,
  ) {
    if (isModule) this.collectModuleDecls();
  }

  /** `file:line:col` of a position (1-based line and column, as editors show them). */
  private at(pos: number): { line: number; column: number } {
    const { line, column } = this.sf.getLineAndColumnAtPos(pos);
    return { line, column: line === 1 ? Math.max(1, column - this.firstLineShift) : column };
  }

  where(n: Node): string {
    const { line, column } = this.at(n.getStart());
    return `${this.file}:${line}:${column}`;
  }

  /** file:line of a node (the ScalarFn's origin; manifests record it). */
  private origin(n: Node): string {
    return `${this.file}:${this.at(n.getStart()).line}`;
  }

  errorAt(pos: number, msg: string): FrontendError {
    const { line, column } = this.at(pos);
    return new FrontendError(this.file, line, column, msg);
  }

  fail(n: Node, msg: string, showCode = true): never {
    const code = n.getText().replace(/\s+/g, ' ').trim();
    const shown = code.length > 60 ? `${code.slice(0, 57)}...` : code;
    throw this.errorAt(n.getStart(), showCode && shown ? `${msg}: \`${shown}\`` : msg);
  }

  /** TypeScript's syntactic diagnostics: the first one is the error (with a count of the others). */
  checkSyntax(): void {
    const program = getProject().getProgram().compilerObject;
    const diags = program.getSyntacticDiagnostics(this.sf.compilerNode);
    if (!diags.length) return;
    const d = diags[0]!;
    const text = ts.flattenDiagnosticMessageText(d.messageText, ' ');
    const more = diags.length > 1 ? ` (and ${diags.length - 1} more syntax error${diags.length > 2 ? 's' : ''})` : '';
    throw this.errorAt(d.start ?? 0, `syntax error: ${text}${more}`);
  }

  private collectModuleDecls(): void {
    const add = (name: string, d: ModuleDecl) => {
      if (!this.moduleDecls.has(name)) this.moduleDecls.set(name, d);
    };
    for (const s of this.sf.getStatements()) {
      if (Node.isVariableStatement(s)) {
        const kind = s.getDeclarationKind();
        for (const d of s.getDeclarations())
          if (Node.isIdentifier(d.getNameNode()))
            add(d.getName(), kind === 'const' ? { kind: 'const', decl: d } : { kind: kind as 'let' | 'var', decl: d });
      } else if (Node.isFunctionDeclaration(s)) {
        const n = s.getName();
        if (n) add(n, { kind: 'function', decl: s });
      } else if (Node.isClassDeclaration(s)) {
        const n = s.getName();
        if (n) add(n, { kind: 'class', decl: s });
      } else if (Node.isEnumDeclaration(s)) add(s.getName(), { kind: 'enum', decl: s });
      else if (Node.isModuleDeclaration(s)) add(s.getName(), { kind: 'namespace', decl: s });
      else if (Node.isImportDeclaration(s)) {
        const def = s.getDefaultImport();
        if (def) add(def.getText(), { kind: 'import', decl: s });
        const ns = s.getNamespaceImport();
        if (ns) add(ns.getText(), { kind: 'import', decl: s });
        for (const spec of s.getNamedImports()) add((spec.getAliasNode() ?? spec.getNameNode()).getText(), {
          kind: 'import',
          decl: s,
        });
      } else if (Node.isImportEqualsDeclaration(s)) add(s.getName(), { kind: 'import', decl: s });
    }
  }

  /** Local names exported under another name: `export { local as name }` (no module specifier). */
  private exportAliases(): Map<string, string> {
    const out = new Map<string, string>();
    for (const s of this.sf.getStatements()) {
      if (!Node.isExportDeclaration(s) || s.getModuleSpecifier()) continue;
      for (const spec of s.getNamedExports()) {
        const local = spec.getNameNode().getText();
        out.set((spec.getAliasNode() ?? spec.getNameNode()).getText(), local);
      }
    }
    return out;
  }

  /** Names this file exports, for the "not found" message. */
  private exportedNames(): string[] {
    const names = new Set<string>();
    for (const s of this.sf.getStatements()) {
      if (Node.isVariableStatement(s) && s.hasExportKeyword())
        for (const d of s.getDeclarations()) names.add(d.getName());
      else if ((Node.isFunctionDeclaration(s) || Node.isClassDeclaration(s)) && s.hasExportKeyword() && s.getName())
        names.add(s.getName()!);
    }
    for (const alias of this.exportAliases().keys()) names.add(alias);
    return [...names].sort();
  }

  /** The function node exported as `name`, or a FrontendError saying why there is none. */
  findExported(name: string): FnNode {
    if (!/^[A-Za-z_$][\w$]*$/.test(name)) throw this.errorAt(0, `'${name}' is not a valid function name`);
    const aliases = this.exportAliases();
    const local = aliases.get(name) ?? name;
    const d = this.moduleDecls.get(local);
    const exported = aliases.has(name) || (d !== undefined && d.kind !== 'import' && hasExport(d.decl));
    if (!d || d.kind === 'import') {
      const names = this.exportedNames();
      const list = names.length ? `it exports: ${names.join(', ')}` : 'it exports nothing';
      const why = d ? `'${name}' is imported from another module; compile it from its own file` : list;
      throw this.errorAt(d ? d.decl.getStart() : 0, `no exported function '${name}' in ${this.file} (${why})`);
    }
    if (!exported)
      this.fail(d.decl, `'${name}' is not exported; write \`export\` before its declaration`, false);
    if (d.kind === 'function') {
      const f = d.decl as import('ts-morph').FunctionDeclaration;
      const impl = f.isOverload() ? f.getImplementation() : f;
      if (!impl) this.fail(f, `function '${name}' has no body`);
      return impl!;
    }
    if (d.kind === 'const' || d.kind === 'let' || d.kind === 'var') {
      const init = d.decl.getInitializer();
      if (!init) this.fail(d.decl, `'${name}' has no value; expected a function`);
      const fn = unwrap(init!);
      if (isFn(fn)) {
        if (d.kind !== 'const') this.fail(d.decl, `'${name}' is declared with ${d.kind}; declare it with const`, false);
        return fn;
      }
      const what = Node.isNumericLiteral(fn) ? 'a number, not a function' : 'not a function';
      this.fail(fn, `'${name}' is ${what}; expected \`export const ${name} = (x: number) => ...\``);
    }
    return this.fail(d.decl, `'${name}' is a ${d.kind}, not a function`, false);
  }

  /** The value of module-level const `name` (compiled and folded to a number), or a FrontendError. */
  private moduleConst(name: string, use: Node): number | undefined {
    const known = this.moduleValues.get(name);
    if (typeof known === 'number') return known;
    const d = this.moduleDecls.get(name);
    if (!d) return undefined;
    const usedAt = `used at ${this.where(use).slice(this.file.length + 1)}`;
    if (d.kind === 'let' || d.kind === 'var')
      this.fail(use, `'${name}' is a module-level ${d.kind} (${this.where(d.decl)}); only module-level const numbers ` +
        `can be used in a function here: declare it as \`const ${name} = ...\``);
    if (d.kind !== 'const')
      this.fail(use, `'${name}' is ${d.kind === 'import' ? 'imported' : `a ${d.kind}`} (${this.where(d.decl)}); ` +
        `a function here can use only its parameters, its own consts and module-level const numbers`);
    if (known === 'resolving') {
      const cycle = [...this.resolving.slice(this.resolving.indexOf(name)), name].join(' → ');
      this.fail(use, `module-level const '${name}' depends on itself (${cycle})`);
    }
    const decl = (d as { decl: import('ts-morph').VariableDeclaration }).decl;
    const init = decl.getInitializer();
    if (!init) this.fail(decl, `module-level const '${name}' has no value`);
    if (isFn(unwrap(init!)))
      this.fail(use, `'${name}' is a function (${this.where(decl)}); a function here cannot call or use others`);
    this.moduleValues.set(name, 'resolving');
    this.resolving.push(name);
    try {
      const inConst = `in the value of module-level const '${name}', ${usedAt}`;
      const e = this.expr(init!, new Map(), inConst);
      if (e.t !== 'f32') this.fail(init!, `module-level const '${name}' is a condition, not a number (${usedAt})`);
      const v = evalScalarFn({ name, args: [], body: e, origin: this.origin(decl) }, []);
      if (!Number.isFinite(v))
        this.fail(init!, `module-level const '${name}' = ${v} is not a finite number (${usedAt})`);
      this.moduleValues.set(name, v);
      return v;
    } finally {
      this.resolving.pop();
      if (this.moduleValues.get(name) === 'resolving') this.moduleValues.delete(name);
    }
  }

  /** Compiles one expression; `env` maps parameters and local consts; `ctx` is appended to messages. */
  private expr(n: Node, env: Map<string, Expr>, ctx?: string): Expr {
    const fail = (m: Node, msg: string): never => this.fail(m, ctx ? `${msg} (${ctx})` : msg);
    const num = (m: Node, e: Expr): Expr => (e.t === 'f32' ? e : fail(m, 'expected a number, got a condition'));
    const cond = (m: Node, e: Expr): Expr => (e.t === 'bool' ? e : fail(m, 'expected a condition (a comparison)'));
    const go = (m: Node): Expr => this.expr(m, env, ctx);

    if (Node.isParenthesizedExpression(n) || Node.isAsExpression(n) || Node.isNonNullExpression(n)) {
      return go(n.getExpression());
    }
    if (Node.isSatisfiesExpression(n)) return go(n.getExpression());
    if (Node.isNumericLiteral(n)) return C(n.getLiteralValue());
    if (Node.isIdentifier(n)) {
      const name = n.getText();
      const v = env.get(name);
      if (v) return v;
      const c = this.opts.constants?.[name];
      if (c !== undefined) return C(c);
      const m = this.isModule ? this.moduleConst(name, n) : undefined;
      if (m !== undefined) return C(m);
      const hint = this.isModule
        ? 'not a parameter, a local const or a module-level const'
        : 'not a parameter or a local const; pass its value in options.constants';
      return fail(n, `unknown name '${name}' (${hint})`);
    }
    if (Node.isPrefixUnaryExpression(n)) {
      const op = n.getOperatorToken();
      if (op === SyntaxKind.PlusPlusToken || op === SyntaxKind.MinusMinusToken)
        fail(n, 'increment / decrement is not supported (values cannot change; use a new const)');
      const a = go(n.getOperand());
      if (op === SyntaxKind.MinusToken) return un('neg', num(n, a));
      if (op === SyntaxKind.PlusToken) return num(n, a);
      if (op === SyntaxKind.ExclamationToken) return un('not', cond(n, a));
      fail(n, 'unsupported unary operator');
    }
    if (Node.isPostfixUnaryExpression(n))
      fail(n, 'increment / decrement is not supported (values cannot change; use a new const)');
    if (Node.isBinaryExpression(n)) {
      const tok = n.getOperatorToken();
      const kind = tok.getKind();
      if (kind >= SyntaxKind.FirstAssignment && kind <= SyntaxKind.LastAssignment)
        fail(n, `assignment ('${tok.getText()}') is not supported (values cannot change; use a new const)`);
      const a = go(n.getLeft());
      const b = go(n.getRight());
      const ar = ARITH[kind];
      if (ar) return bin(ar, num(n, a), num(n, b));
      const cmp = CMP[kind];
      if (cmp) return bin(cmp, num(n, a), num(n, b), 'bool');
      if (kind === SyntaxKind.AmpersandAmpersandToken) return bin('and', cond(n, a), cond(n, b), 'bool');
      if (kind === SyntaxKind.BarBarToken) return bin('or', cond(n, a), cond(n, b), 'bool');
      fail(n, `unsupported operator '${tok.getText()}'`);
    }
    if (Node.isConditionalExpression(n)) {
      const c = cond(n, go(n.getCondition()));
      const a = num(n, go(n.getWhenTrue()));
      const b = num(n, go(n.getWhenFalse()));
      return { op: 'select', t: 'f32', s: 'uniform', c, a, b };
    }
    if (Node.isPropertyAccessExpression(n)) {
      const t = n.getText().replace(/\s+/g, '');
      if (t in MATH_CONSTANTS) return C(MATH_CONSTANTS[t]!);
      fail(n, `unsupported property (the Math constants are ${Object.keys(MATH_CONSTANTS).join(', ')})`);
    }
    if (Node.isCallExpression(n)) {
      const callee = n.getExpression().getText().replace(/\s+/g, '');
      const one = MATH_ONE[callee];
      const two = MATH_TWO[callee];
      if (!one && !two) fail(n, `unsupported call '${callee}' (only ${MATH_FNS} can be called)`);
      const as = n.getArguments().map((x) => num(x, go(x)));
      if (one) {
        if (as.length !== 1) fail(n, `${callee} takes one argument, got ${as.length}`);
        return un(one, as[0]!);
      }
      if (as.length !== 2) fail(n, `${callee} takes two arguments, got ${as.length}`);
      return bin(two!, as[0]!, as[1]!);
    }
    if (Node.isStringLiteral(n) || Node.isNoSubstitutionTemplateLiteral(n) || Node.isTemplateExpression(n))
      fail(n, `unsupported syntax (${n.getKindName()}): only numbers are supported`);
    if (Node.isArrowFunction(n) || Node.isFunctionExpression(n)) fail(n, 'nested functions are not supported');
    return fail(n, `unsupported syntax (${n.getKindName()})`);
  }

  /** Compiles a function node into a ScalarFn. */
  compileFunction(node: Node, name: string): ScalarFn {
    if (!isFn(node)) this.fail(node, 'expected an arrow function or a function');
    const fn = node as FnNode;
    if (fn.isAsync()) this.fail(fn, 'async functions are not supported');
    if (!Node.isArrowFunction(fn) && fn.isGenerator()) this.fail(fn, 'generator functions are not supported');
    const args: string[] = [];
    for (const p of fn.getParameters()) {
      if (p.isRestParameter()) this.fail(p, 'rest parameters are not supported');
      if (!Node.isIdentifier(p.getNameNode())) this.fail(p, 'parameters must be plain names (no destructuring)');
      if (p.getInitializer()) this.fail(p, 'default parameter values are not supported');
      if (p.hasQuestionToken()) this.fail(p, 'optional parameters are not supported');
      const tn = p.getTypeNode();
      if (tn && tn.getText() !== 'number') this.fail(tn, 'parameters must be numbers');
      if (args.includes(p.getName())) this.fail(p, `duplicate parameter '${p.getName()}'`);
      args.push(p.getName());
    }
    const label = Node.isFunctionDeclaration(fn) ? fn.getName() ?? name : name;
    const { arity, role = 'scalar function' } = this.opts;
    if (arity !== undefined && args.length !== arity) {
      const params = args.length ? ` (${args.join(', ')})` : '';
      const want = arity === 1 ? 'one parameter' : `${arity} parameters`;
      this.fail(fn, `'${label}' takes ${args.length} parameter${args.length === 1 ? '' : 's'}${params}; ` +
        `a ${role} takes ${want}`, false);
    }
    const rt = fn.getReturnTypeNode();
    if (rt && rt.getText() !== 'number') this.fail(rt, 'the return type must be number');

    const env = new Map<string, Expr>();
    for (const a of args) env.set(a, argRef(a));
    const num = (n: Node, e: Expr): Expr => (e.t === 'f32' ? e : this.fail(n, 'expected a number, got a condition'));

    const body = fn.getBody();
    if (!body) this.fail(fn, 'function has no body');
    let result: Expr | undefined;
    if (Node.isBlock(body)) {
      const stmts = body.getStatements();
      stmts.forEach((s, i) => {
        if (Node.isVariableStatement(s)) {
          if (s.getDeclarationKind() !== 'const') this.fail(s, 'only const declarations are supported');
          for (const d of s.getDeclarations()) {
            if (!Node.isIdentifier(d.getNameNode())) this.fail(d, 'destructuring is not supported');
            const init = d.getInitializer();
            if (!init) this.fail(d, 'a const needs a value');
            env.set(d.getName(), num(d, this.expr(init!, env)));
          }
        } else if (Node.isReturnStatement(s)) {
          if (i !== stmts.length - 1) this.fail(s, 'return must be the last statement');
          const e = s.getExpression();
          if (!e) this.fail(s, 'return needs a value');
          result = num(s, this.expr(e!, env));
        } else if (LOOPS.has(s.getKind())) this.fail(s, `loops are not supported (${s.getKindName()})`);
        else if (Node.isIfStatement(s))
          this.fail(s, 'unsupported statement (IfStatement): use a conditional expression `c ? a : b`');
        else if (Node.isExpressionStatement(s))
          this.fail(s, 'unsupported statement (ExpressionStatement): only `const` declarations and a final `return` ' +
            'are allowed (values cannot change; use a new const)');
        else this.fail(s, `unsupported statement (${s.getKindName()})`);
      });
      if (!result) this.fail(body, 'missing return', false);
    } else result = num(body!, this.expr(body!, env));
    return { name: label, args, body: result!, origin: this.origin(fn) };
  }
}
