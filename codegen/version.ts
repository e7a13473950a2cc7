// The version of the generated code.

/** Bumped whenever generated code changes meaning; part of every cache / tuning key. */
export const CODEGEN_VERSION = '0.1.0';
