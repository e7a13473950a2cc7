// ts-morph front end: plain TS scalar functions → IR, evaluated and differentiated; errors name file:line.
import { describe, expect, it } from 'vitest';
import { compileScalarFunction, compileScalarSource, FrontendError } from '../codegen/frontend.js';
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
        if (name !== 'conditional' || Math.abs(x) > 1e-3) expect(Math.abs(evalScalarFn(dsf, [x]) - fd)).toBeLessThan(1e-5 * Math.max(1, Math.abs(fd)));
      }
    });

  it('two-argument functions', () => {
    const sf = compileScalarFunction((lq: number, t: number) => -lq * t + 1);
    expect(sf.args).toEqual(['lq', 't']);
    expect(evalScalarFn(sf, [2, 3])).toBe(-5);
    expect(evalScalarFn(derivative(sf, 't'), [2, 3])).toBe(-2);
  });

  const bad: [string, string, RegExp][] = [
    ['let', '(x: number) => {\n  let y = x;\n  return y;\n}', /<inline function>:2: only const declarations are supported/],
    ['unknown call', '(x: number) => foo(x)', /<inline function>:1: unsupported call 'foo'/],
    ['free name', '(x: number) => x * cap', /unknown name 'cap'/],
    ['loop', '(x: number) => {\n  for (;;) {}\n  return x;\n}', /<inline function>:2: unsupported statement \(ForStatement\)/],
    ['string', "(x: number) => x + 'a'", /unsupported syntax \(StringLiteral\)/],
    ['non-number parameter', '(x: string) => 1', /parameters must be numbers/],
    ['condition as value', '(x: number) => x > 1', /expected a number, got a condition/],
  ];
  for (const [what, src, msg] of bad)
    it(`rejects ${what} with a file:line message`, () => {
      expect(() => compileScalarFunction(src)).toThrow(FrontendError);
      expect(() => compileScalarFunction(src)).toThrow(msg);
    });

  it('compiles a named function from a source file and reports its line', () => {
    const text = `// user transforms\nexport function softcap(x: number): number {\n  return 20 * Math.tanh(x / 20);\n}\nexport const bad = (x: number) => {\n  x++;\n  return x;\n};\n`;
    const sf = compileScalarSource('/tmp/user/transforms.ts', text, 'softcap');
    expect(sf.origin).toBe('/tmp/user/transforms.ts:2');
    expect(evalScalarFn(sf, [3])).toBeCloseTo(20 * Math.tanh(3 / 20), 12);
    expect(() => compileScalarSource('/tmp/user/transforms.ts', text, 'bad')).toThrow(/^\/tmp\/user\/transforms.ts:6: unsupported statement/);
    expect(() => compileScalarSource('/tmp/user/transforms.ts', text, 'missing')).toThrow(/no function named 'missing'/);
  });
});
