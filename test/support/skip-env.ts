// What the skip helpers (toolchains.ts, in the test workers) and the summary reporter (skip-summary.ts, in
// vitest's main process) share; no imports, so the reporter loads neither vitest's runtime nor the runtimes.

/** The one command that installs every toolchain the tests use (Debian packages). */
export const SETUP_COMMAND = 'sudo bash .ci/setup-system';

/** The variable naming the folder where test files record why they skip (set by the reporter, inherited). */
export const SKIP_DIR_ENV = 'CCEKIT_SKIP_DIR';
