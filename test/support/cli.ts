// Running the ccekit CLI from tests: main() in this process with stdout and stderr captured (fast), or as a user
// runs it, a child process of `node --import tsx cli/main.ts`, killed after a time limit.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** `main(args)` in this process, what it writes to stdout and stderr captured. */
export async function mainCaptured(
  main: (argv: readonly string[]) => Promise<number>,
  args: readonly string[],
): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const w1 = process.stdout.write.bind(process.stdout);
  const w2 = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string | Uint8Array) => ((stdout += String(s)), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string | Uint8Array) => ((stderr += String(s)), true)) as typeof process.stderr.write;
  const t0 = performance.now();
  let code: number;
  try {
    code = await main(args);
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
  }
  return { code, stdout, stderr, ms: performance.now() - t0 };
}

/** `node --import tsx cli/main.ts ...args` from the repository root, with `env` added, killed after `limitMs`. */
export function spawnCli(
  args: readonly string[],
  o: { env?: Record<string, string>; limitMs?: number } = {},
): Promise<CliResult & { killed: boolean }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const env = { ...process.env, CCEKIT_DEBUG: '', ...o.env };
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], { cwd: ROOT, env });
    let stdout = '';
    let stderr = '';
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, o.limitMs ?? 60_000);
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: performance.now() - t0, killed });
    });
  });
}
