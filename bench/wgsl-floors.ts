// Memory floors of the per-row CCE- step in WGSL on a WebGPU adapter, the counterpart of bench/floors.cu:
//   gather16    random whole-row reads of a [V, D] 16-bit table, one row per (row, negative) — the forward
//   scatterCas  random whole-row fp32 adds into a [V, D] fp32 table through compare-exchange loops — the dC
//               update of the backward (WGSL has no float atomics)
//   scatterU32  the same with native u32 atomicAdd (what integer atomics cost: the deterministic dC's words)
// One subgroup-sized group of 32 invocations per pair, consecutive lanes on consecutive words; 2 s of warm-up,
// then the best of 5 timestamped passes.
// Usage (bundled by scripts/device-pack.sh): node wgsl-floors.mjs [setting or N:K:V:D,...]   (default: all settings)
import { SETTINGS } from './settings.js';
import { acquireWebgpu, releaseWebgpu } from '../runtime/webgpu/device.js';

const KERNELS = `
struct P { pairs: u32, V: u32, rowWords: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> table: array<atomic<u32>>;
@group(0) @binding(2) var<storage, read_write> sink: array<u32>;
fn hash32(x0: u32) -> u32 {
  var x = x0;
  x ^= x >> 16u; x *= 0x7feb352du; x ^= x >> 15u; x *= 0x846ca68bu; x ^= x >> 16u;
  return x;
}
@compute @workgroup_size(128)
fn gather16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  var acc = 0u;
  for (var q = gid.x >> 5u; q < p.pairs; q += nwg.x * 4u) {
    let item = hash32(q) % p.V;
    for (var c = gid.x & 31u; c < p.rowWords; c += 32u) { acc ^= atomicLoad(&table[item * p.rowWords + c]); }
  }
  if (acc == 0x12345678u) { sink[0] = acc; }
}
@compute @workgroup_size(128)
fn scatterCas(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  for (var q = gid.x >> 5u; q < p.pairs; q += nwg.x * 4u) {
    let item = hash32(q) % p.V;
    for (var c = gid.x & 31u; c < p.rowWords; c += 32u) {
      let i = item * p.rowWords + c;
      var old = atomicLoad(&table[i]);
      loop {
        let r = atomicCompareExchangeWeak(&table[i], old, bitcast<u32>(bitcast<f32>(old) + 1e-6f));
        if (r.exchanged) { break; }
        old = r.old_value;
      }
    }
  }
}
@compute @workgroup_size(128)
fn scatterU32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  for (var q = gid.x >> 5u; q < p.pairs; q += nwg.x * 4u) {
    let item = hash32(q) % p.V;
    for (var c = gid.x & 31u; c < p.rowWords; c += 32u) { atomicAdd(&table[item * p.rowWords + c], 1u); }
  }
}
`;

async function main(): Promise<void> {
  const names = process.argv[2]?.split(',') ?? SETTINGS.map((s) => s.name);
  const ctx = await acquireWebgpu();
  if (!ctx) throw new Error('no WebGPU adapter');
  if (!ctx.timestamps) throw new Error('the adapter has no timestamp-query');
  const { device } = ctx;
  try {
    const module = device.createShaderModule({ code: KERNELS });
    const info = await module.getCompilationInfo();
    for (const m of info.messages) if (m.type === 'error') throw new Error(`WGSL: ${m.message}`);
    const layout = device.createBindGroupLayout({
      entries: [
        { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform' } },
        { binding: 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'storage' } },
        { binding: 2, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'storage' } },
      ],
    });
    const pipelineLayout = device.createPipelineLayout({ bindGroupLayouts: [layout] });
    const pipelines = Object.fromEntries(
      ['gather16', 'scatterCas', 'scatterU32'].map((entryPoint) => [entryPoint, device.createComputePipeline({ layout: pipelineLayout, compute: { module, entryPoint } })]),
    );
    const querySet = device.createQuerySet({ type: 'timestamp', count: 2 });
    const resolve = device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const readback = device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const sink = device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE });
    const pass = async (pl: GPUComputePipeline, group: GPUBindGroup): Promise<number> => {
      const enc = device.createCommandEncoder();
      const cp = enc.beginComputePass({ timestampWrites: { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } });
      cp.setPipeline(pl);
      cp.setBindGroup(0, group);
      cp.dispatchWorkgroups(8192);
      cp.end();
      enc.resolveQuerySet(querySet, 0, 2, resolve, 0);
      enc.copyBufferToBuffer(resolve, 0, readback, 0, 16);
      device.queue.submit([enc.finish()]);
      await readback.mapAsync(GPUMapMode.READ);
      const t = new BigInt64Array(readback.getMappedRange().slice(0));
      readback.unmap();
      return Number(t[1]! - t[0]!) / 1e6;
    };
    console.log(`card ${ctx.name}`);
    for (const n of names) {
      // A setting's name, or N:K:V:D.
      const dims = n.split(':').map(Number);
      const st = SETTINGS.find((s) => s.name === n) ?? (dims.length === 4 ? { name: n, N: dims[0]!, K: dims[1]!, V: dims[2]!, D: dims[3]! } : undefined);
      if (!st) throw new Error(`unknown setting ${n}`);
      const pairs = st.N * st.K;
      const uniform = (rowWords: number) => {
        const b = device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
        device.queue.writeBuffer(b, 0, new Uint32Array([pairs, st.V, rowWords, 0]));
        return b;
      };
      const table = device.createBuffer({ size: st.V * st.D * 4, usage: GPUBufferUsage.STORAGE });
      const owned = [table];
      const line: string[] = [];
      for (const [entry, rowWords, bytesPerPair] of [['gather16', st.D / 2, st.D * 2], ['scatterCas', st.D, st.D * 4], ['scatterU32', st.D, st.D * 4]] as const) {
        const u = uniform(rowWords);
        owned.push(u);
        const group = device.createBindGroup({ layout, entries: [{ binding: 0, resource: { buffer: u } }, { binding: 1, resource: { buffer: table } }, { binding: 2, resource: { buffer: sink } }] });
        const end = performance.now() + 2000;
        while (performance.now() < end) await pass(pipelines[entry]!, group);
        let best = Infinity;
        for (let r = 0; r < 5; r++) best = Math.min(best, await pass(pipelines[entry]!, group));
        line.push(`${entry} ${best.toFixed(3)} ms (${((pairs * bytesPerPair) / best / 1e9).toFixed(2)} TB/s of ${entry === 'gather16' ? '16-bit rows read' : 'payload'})`);
      }
      console.log(`${n.padEnd(11)} V=${st.V} D=${st.D} pairs=${pairs}: ${line.join('; ')}`);
      owned.forEach((b) => b.destroy());
    }
  } finally {
    releaseWebgpu(ctx);
  }
}

await main();
