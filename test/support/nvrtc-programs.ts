// Compile CUDA programs with NVRTC in a process of its own, so that several compile at once (NVRTC runs in the
// calling thread): `node --import tsx test/support/nvrtc-programs.ts <job.json> <result.json>`. The job is
// { options, programs: [{ name, source }] }; the result, one entry a program in order, is { ptx } or { error }
// with NVRTC's call, error name and log. Exit 0 when the results were written (compile errors included).
import { readFileSync, writeFileSync } from 'node:fs';
import { loadNvrtc, NvrtcError } from '../../runtime/cuda/nvrtc.js';

export interface NvrtcJob {
  options: string[];
  programs: { name: string; source: string }[];
}
export type NvrtcProgramResult = { ptx: string } | { error: { call: string; errorName: string; log: string } };

const [jobPath, resultPath] = process.argv.slice(2);
if (!jobPath || !resultPath) {
  console.error('usage: nvrtc-programs.ts <job.json> <result.json>');
  process.exit(2);
}
const nvrtc = loadNvrtc();
if (!nvrtc) {
  console.error('NVRTC (libnvrtc) not found');
  process.exit(3);
}
const job = JSON.parse(readFileSync(jobPath, 'utf8')) as NvrtcJob;
const results: NvrtcProgramResult[] = job.programs.map(({ name, source }) => {
  try {
    return { ptx: nvrtc.compile(source, name, job.options).ptx };
  } catch (e) {
    if (!(e instanceof NvrtcError)) throw e;
    return { error: { call: e.call, errorName: e.errorName, log: e.log ?? '' } };
  }
});
writeFileSync(resultPath, JSON.stringify(results));
