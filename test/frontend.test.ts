// ts-morph front end: plain TS scalar functions → IR, evaluated and differentiated; errors name file:line:col.
import { describe, expect, it } from 'vitest';
import { compileScalarFunction, compileScalarSource, FrontendError } from '../dsl/frontend.js';
import { derivative, evalScalarFn } from '../dsl/scalarfn.js';
import { Rng } from '../runtime/random.js';

const CASES: [string, (...a: number[]) => number, Record<string, number>?][] = [
  ['soft cap', (x: number) => 30 * Math.tanh(x / 30)],
  ['temperature', (x: number) => x / 0.07],
  ['block body', (x: number) => {
    const y = x * x;
    const z = Math.exp(-y / 2);
    return z + Math.log1p(Math.abs(x));
  }],
  ['conditional', (x: number) => (x > 0 && x < 3 ? x ** 3 : -Math.sqrt(1 + x * x))],
  ['closure constant', (x: number) => cap * Math.tanh(x / cap), { cap: 12.5 }],
  ['max/min/pow', (x: number) => Math.max(x, 0.1) + Math.min(x, -0.2) + Math.pow(Math.E, x / 4)],
];
const cap = 12.5;

describe('ts-morph front end', () => {
  for (const [name, fn, constants] of CASES)
    it(`${name}: same values as the JS function, derivative matches finite differences`, () => {
      const sf = compileScalarFunction(fn, { constants });
      const dsf = derivative(sf, sf.args[0]);
      const rng = new Rng(7);
      for (let i = 0; i < 50; i++) {
        const x = (rng.next() - 0.5) * 8;
        expect(evalScalarFn(sf, [x])).toBeCloseTo(fn(x), 12);
        const h = 1e-6;
        const fd = (fn(x + h) - fn(x - h)) / (2 * h);
        if (name !== 'conditional' || Math.abs(x) > 1e-3)
          expect(Math.abs(evalScalarFn(dsf, [x]) - fd)).toBeLessThan(1e-5 * Math.max(1, Math.abs(fd)));
      }
    });

  it('two-argument functions', () => {
    const sf = compileScalarFunction((lq: number, t: number) => -lq * t + 1);
    expect(sf.args).toEqual(['lq', 't']);
    expect(evalScalarFn(sf, [2, 3])).toBe(-5);
    expect(evalScalarFn(derivative(sf, 't'), [2, 3])).toBe(-2);
  });

  const bad: [string, string, RegExp][] = [
    ['let', '(x: number) => {\n  let y = x;\n  return y;\n}', /^<inline function>:2:3: only const declarations/],
    ['unknown call', '(x: number) => foo(x)', /^<inline function>:1:16: unsupported call 'foo'/],
    ['free name', '(x: number) => x * cap', /^<inline function>:1:20: unknown name 'cap' .*options\.constants/],
    ['loop', '(x: number) => {\n  for (;;) {}\n  return x;\n}', /^<inline function>:2:3: loops are not supported/],
    ['string', "(x: number) => x + 'a'", /unsupported syntax \(StringLiteral\)/],
    ['non-number parameter', '(x: string) => 1', /^<inline function>:1:5: parameters must be numbers/],
    ['condition as value', '(x: number) => x > 1', /expected a number, got a condition/],
    ['syntax error', '(x: number) => x +* 2', /^<inline function>:1:19: syntax error: Expression expected\./],
  ];
  for (const [what, src, msg] of bad)
    it(`rejects ${what} with a file:line:col message`, () => {
      expect(() => compileScalarFunction(src)).toThrow(FrontendError);
      expect(() => compileScalarFunction(src)).toThrow(msg);
    });

  it('compiles a named function from a source file and reports its line', () => {
    const text = [
      '// user transforms',
      'export function softcap(x: number): number {',
      '  return 20 * Math.tanh(x / 20);',
      '}',
      'export const bad = (x: number) => {',
      '  x++;',
      '  return x;',
      '};',
    ].join('\n');
    const path = '/tmp/user/transforms.ts';
    const sf = compileScalarSource(path, text, 'softcap');
    expect(sf.origin).toBe('/tmp/user/transforms.ts:2');
    expect(evalScalarFn(sf, [3])).toBeCloseTo(20 * Math.tanh(3 / 20), 12);
    expect(() => compileScalarSource(path, text, 'bad')).toThrow(
      /^\/tmp\/user\/transforms\.ts:6:3: unsupported statement/,
    );
    expect(() => compileScalarSource(path, text, 'missing')).toThrow(
      /^\/tmp\/user\/transforms.ts:1:1: no exported function 'missing' .*it exports: bad, softcap/,
    );
  });

  // Bad transform files as the CLI compiles them (`--transform FILE:NAME`): one message starting file:line:col.
  const F = '/tmp/user/t.ts';
  const at = (line: number, col: number, rest: RegExp) =>
    new RegExp(`^/tmp/user/t\\.ts:${line}:${col}: ${rest.source}`);
  const badFiles: [string, string, RegExp][] = [
    ['a syntax error', 'export const f = (x: number) => x +* 2;\n',
      at(1, 36, /syntax error: Expression expected\.$/)],
    ['a syntax error elsewhere in the file', 'export const f = (x: number) => x;\nconst y = ;\n',
      at(2, 11, /syntax error: /)],
    ['several syntax errors', '// x\nexport const f = (x: number) => {\n  return x +;\n',
      at(3, 13, /syntax error: .*\(and 1 more syntax error\)/)],
    ['a missing name', 'export const g = (x: number) => x;\nexport function h(x: number) { return x; }\n',
      at(1, 1, /no exported function 'f' in \/tmp\/user\/t\.ts \(it exports: g, h\)/)],
    ['an empty file', '',
      at(1, 1, /no exported function 'f' .*it exports nothing/)],
    ['a name that is not exported', '// helpers\nconst f = (x: number) => x;\n',
      at(2, 7, /'f' is not exported; write `export`/)],
    ['an imported name', "import { f } from './other';\nexport const g = f;\n",
      at(1, 1, /no exported function 'f' .*imported/)],
    ['a number export', 'export const f = 30;\n',
      at(1, 18, /'f' is a number, not a function/)],
    ['a class export', 'export class f {}\n',
      at(1, 1, /'f' is a class, not a function/)],
    ['a let function', 'export let f = (x: number) => x;\n',
      at(1, 12, /'f' is declared with let; declare it with const/)],
    ['two parameters', 'export const f = (x: number, y: number) => x * y;\n',
      at(1, 18, /'f' takes 2 parameters \(x, y\); a transform takes one parameter$/)],
    ['no parameters', 'export const f = () => 1;\n',
      at(1, 18, /'f' takes 0 parameters; a transform takes one/)],
    ['a for loop', 'export function f(x: number) {\n  for (let i = 0; i < 3; i++) {}\n  return x;\n}\n',
      at(2, 3, /loops are not supported \(ForStatement\)/)],
    ['a while loop', 'export function f(x: number) {\n  while (x > 1) {}\n  return x;\n}\n',
      at(2, 3, /loops are not supported \(WhileStatement\)/)],
    ['an if statement', 'export function f(x: number) {\n  if (x > 0) return x;\n  return -x;\n}\n',
      at(2, 3, /.*IfStatement.*`c \? a : b`/)],
    ['an assignment', 'export function f(x: number) {\n    x = 2;\n  return x;\n}\n',
      at(2, 5, /unsupported statement \(ExpressionStatement\)/)],
    ['an unknown function call', 'export const f = (x: number) => foo(x);\n',
      at(1, 33, /unsupported call 'foo' \(only Math\.exp, .*can be called\)/)],
    ['Math.random', 'export const f = (x: number) => x * Math.random();\n',
      at(1, 37, /unsupported call 'Math\.random'/)],
    ['a call to a helper', 'const h = (x: number) => x;\nexport const f = (x: number) => 2 * h(x);\n',
      at(2, 37, /unsupported call 'h'/)],
    ['a helper used as a value', 'const h = (x: number) => x;\nexport const f = (x: number) => h * x;\n',
      at(2, 33, /'h' is a function \(\/tmp\/user\/t\.ts:1:7\)/)],
    ['Math.tanh with two arguments', 'export const f = (x: number) => Math.tanh(x, 2);\n',
      at(1, 33, /Math\.tanh takes one argument, got 2/)],
    ['an unknown name', 'export const f = (x: number) => x * cap;\n',
      at(1, 37, /unknown name 'cap' \(not a parameter, a local const or a module-level const\)/)],
    ['a module-level let', 'let CAP = 30;\nexport const f = (x: number) => CAP * x;\n',
      at(2, 33, /'CAP' is a module-level let \(\/tmp\/user\/t\.ts:1:5\).*`const CAP = \.\.\.`/)],
    ['a module-level string const', "const CAP = 'a';\nexport const f = (x: number) => CAP * x;\n",
      at(1, 13, /unsupported syntax \(StringLiteral\).*module-level const 'CAP', used at 2:33/)],
    ['a module-level const from a call', 'const CAP = load();\nexport const f = (x: number) => CAP * x;\n',
      at(1, 13, /unsupported call 'load'.*module-level const 'CAP'/)],
    ['an imported const', "import { CAP } from './c';\nexport const f = (x: number) => CAP * x;\n",
      at(2, 33, /'CAP' is imported \(\/tmp\/user\/t\.ts:1:1\)/)],
    ['a cycle of consts', 'const A = B + 1;\nconst B = 2 * A;\nexport const f = (x: number) => A * x;\n',
      at(2, 15, /module-level const 'A' depends on itself \(A → B → A\)/)],
    ['a const defined by itself', 'const A = A + 1;\nexport const f = (x: number) => A * x;\n',
      at(1, 11, /module-level const 'A' depends on itself \(A → A\)/)],
    ['an infinite const', 'const A = 1 / 0;\nexport const f = (x: number) => A * x;\n',
      at(1, 11, /module-level const 'A' = Infinity is not a finite number/)],
    ['a condition const', 'const A = 1 > 0;\nexport const f = (x: number) => A * x;\n',
      at(1, 11, /module-level const 'A' is a condition/)],
    ['an async function', 'export const f = async (x: number) => x;\n',
      at(1, 18, /async functions are not supported/)],
    ['a string parameter', 'export const f = (x: string) => 1;\n',
      at(1, 22, /parameters must be numbers/)],
    ['a default parameter', 'export const f = (x = 1) => x;\n',
      at(1, 19, /default parameter values are not supported/)],
    ['a non-number return type', 'export function f(x: number): boolean {\n  return x > 0;\n}\n',
      at(1, 31, /the return type must be number/)],
    ['a boolean result', 'export const f = (x: number) => x > 1;\n',
      at(1, 33, /expected a number, got a condition/)],
    ['the % operator', 'export const f = (x: number) => x % 2;\n',
      at(1, 33, /unsupported operator '%'/)],
    ['x++', 'export const f = (x: number) => x++;\n',
      at(1, 33, /increment \/ decrement is not supported/)],
    ['a missing return', 'export function f(x: number) {\n  const y = x;\n}\n',
      at(1, 30, /missing return$/)],
    ['a return before the end', 'export function f(x: number) {\n  return x;\n  const y = 1;\n}\n',
      at(2, 3, /return must be the last statement/)],
  ];
  for (const [what, src, msg] of badFiles)
    it(`refuses a transform file with ${what}, at file:line:col`, () => {
      let err: unknown;
      try {
        compileScalarSource(F, src, 'f', { arity: 1, role: 'transform' });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(FrontendError);
      const m = (err as FrontendError).message;
      expect(m).toMatch(msg);
      expect(m).not.toMatch(/\n/);
      expect((err as FrontendError).name).toBe('FrontendError');
      const [, line, col] = /^[^:]+:(\d+):(\d+): /.exec(m)!;
      expect([(err as FrontendError).line, (err as FrontendError).column]).toEqual([Number(line), Number(col)]);
    });

  it('resolves module-level consts (literals, other consts, Math constants) to the JS function\'s values', () => {
    const text = [
      '// soft cap with module-level constants',
      'const CAP = 30;',
      'export const softcap = (x: number) => CAP * Math.tanh(x / CAP);',
      'const SCALE = 2 * Math.PI / CAP;',
      'export const CAP2: number = -((CAP + SCALE) ** 0.5) * -1;',
      'export function wavy(x: number): number {',
      '  const CAP = 3;', // a local shadows the module-level const
      '  return CAP2 * Math.tanh(x / CAP2) + SCALE * x - CAP;',
      '}',
      'export const shadow = (CAP: number) => CAP * 2;', // a parameter shadows it too
      'const g = (x: number) => x / CAP2;',
      'export { g as scaled };',
    ].join('\n');
    const CAP = 30;
    const SCALE = (2 * Math.PI) / CAP;
    const CAP2 = -((CAP + SCALE) ** 0.5) * -1;
    const js: Record<string, (x: number) => number> = {
      softcap: (x) => CAP * Math.tanh(x / CAP),
      wavy: (x) => CAP2 * Math.tanh(x / CAP2) + SCALE * x - 3,
      shadow: (x) => x * 2,
      scaled: (x) => x / CAP2,
    };
    const seed = Math.floor(Math.random() * 2 ** 31);
    const rng = new Rng(seed);
    for (const [name, f] of Object.entries(js)) {
      const sf = compileScalarSource('/tmp/user/consts.ts', text, name, { arity: 1, role: 'transform' });
      const dsf = derivative(sf, sf.args[0]!);
      for (let i = 0; i < 200; i++) {
        const x = (rng.next() - 0.5) * 200;
        const want = f(x);
        const got = evalScalarFn(sf, [x]);
        const tol = 1e-14 * Math.max(1, Math.abs(want));
        expect(Math.abs(got - want), `${name}(${x}), seed ${seed}`).toBeLessThanOrEqual(tol);
        const h = 1e-5;
        const fd = (f(x + h) - f(x - h)) / (2 * h);
        const dgot = evalScalarFn(dsf, [x]);
        expect(Math.abs(dgot - fd), `d${name}(${x}), seed ${seed}`).toBeLessThan(1e-6 * Math.max(1, Math.abs(fd)));
      }
    }
    // A module-level const that is itself an exported number is not a function.
    expect(() => compileScalarSource('/tmp/user/consts.ts', text, 'CAP2')).toThrow(
      /^\/tmp\/user\/consts\.ts:5:29: 'CAP2' is not a function; expected `export const CAP2 = \(x: number\) => \.\.\.`/,
    );
  });
});
