// What a device offers the one CCE- step (runtime/step.ts): compile a kernel, allocate, upload, fill, launch,
// read back and time. A backend holds no step logic: which passes run, their buffers and scalars come from the
// step. Calls that a device answers later (WebGPU's compilation and readback) return promises; the step is written
// once as a generator and driven synchronously (CPU, CUDA) or asynchronously (WebGPU) by `drive`.
import type { Kernel } from '../codegen/ir.js';
import type { LoweredKernel } from '../codegen/lower.js';
import type { DeviceCaps } from '../codegen/target.js';
import type { KernelSpec } from './kernels.js';

export type Maybe<T> = T | Promise<T>;

/** Element types of device buffers: f16 / bf16 hold storage values (16-bit patterns), the rest plain values. */
export type BufferDType = 'f32' | 'f16' | 'bf16' | 'i32' | 'u32' | 'i64';

export const DTYPE_BYTES: Record<BufferDType, number> = { f32: 4, f16: 2, bf16: 2, i32: 4, u32: 4, i64: 8 };

/** What a read returns: float buffers as float64 values, integer buffers as they are. */
export type ReadData = Float64Array | Int32Array | Uint32Array | BigInt64Array;

export interface DeviceBuffer {
  readonly name: string;
  readonly dtype: BufferDType;
  /** Elements. */
  readonly length: number;
}

export interface CompiledKernel {
  spec: KernelSpec;
  kernel: Kernel;
  lowered: LoweredKernel;
  /** Registers a thread, where the device reports them. */
  registers?: number;
  /** Bytes of local memory a thread spills to, where the device reports them. */
  spillBytes?: number;
}

/** The kinds of backend; default schedules (runtime/defaults.ts) and tuning keys are per kind and device. */
export type BackendKind = 'cpu' | 'webgpu' | 'cuda';

/** How a backend's marks are timed. */
export type TimerMethod = 'timestamp-query' | 'wall-clock' | 'cuda-events';

export interface Backend<B extends DeviceBuffer = DeviceBuffer, K extends CompiledKernel = CompiledKernel> {
  readonly kind: BackendKind;
  readonly timing: TimerMethod;
  /** The device's name, e.g. "NVIDIA H200" or "llvmpipe (LLVM 19.1.7, 256 bits)". */
  readonly device: string;
  readonly caps: DeviceCaps;
  /** The device as tuning entries are keyed: name, architecture (prefixed by the API where not CUDA), driver. */
  readonly identity: { name: string; arch: string; driver: string };
  /** Compile (or take from the backend's cache, keyed by spec.key) the kernel of a pass. */
  compile(spec: KernelSpec): Maybe<K>;
  /** A buffer of `length` elements, its content undefined until uploaded or filled. */
  alloc(name: string, dtype: BufferDType, length: number): B;
  /** Host data into a buffer: storage patterns for f16 / bf16, values for the other types. */
  upload(b: B, data: ArrayLike<number> | ArrayLike<bigint>): void;
  /** The first `count` elements (default all) set to `value` (0, NaN or −1; i64 buffers take 0 only). */
  fill(b: B, value: number, count?: number): void;
  /** One launch over `rows` rows (programs of the kernel's rows each); buffers and scalars by parameter name. */
  launch(k: K, rows: number, buffers: Record<string, B>, scalars: Record<string, number>): void;
  /** A timestamp in the launch stream; `elapsed` returns the ms between consecutive marks since the last call. */
  mark(): void;
  elapsed(): Maybe<number[]>;
  /** Wait for the launches so far. */
  sync(): Maybe<void>;
  read(b: B, count?: number): Maybe<ReadData>;
  free(b: B): void;
}

/**
 * Drive a step written as a generator: it yields what a backend returned (a value or a promise) and receives
 * the value back. Synchronous backends never return promises, so their steps run to completion here.
 */
export function driveSync<T>(g: Generator<unknown, T, unknown>): T {
  let r = g.next();
  while (!r.done) {
    if (r.value instanceof Promise) throw new Error('a synchronous backend returned a promise');
    r = g.next(r.value);
  }
  return r.value;
}

export async function driveAsync<T>(g: Generator<unknown, T, unknown>): Promise<T> {
  let r = g.next();
  while (!r.done) r = g.next(await r.value);
  return r.value;
}

// Helpers of the byte-addressed backends (CUDA, WebGPU).

export const NAN_BITS = 0x7fc00000;

/** 32-bit fill patterns of a value in a buffer's dtype. */
export function fillWord(dtype: BufferDType, value: number): number {
  if (value === 0) return 0;
  if (dtype === 'f32') return Number.isNaN(value) ? NAN_BITS : new Uint32Array(new Float32Array([value]).buffer)[0]!;
  if (dtype === 'i32' || dtype === 'u32') return value >>> 0;
  throw new Error(`fill: a ${dtype} buffer takes 0 only`);
}

/** Host data in a buffer's storage layout. */
export function storageOf(dtype: BufferDType, data: ArrayLike<number> | ArrayLike<bigint>): ArrayBufferView {
  if ((dtype === 'f16' || dtype === 'bf16') && data instanceof Uint16Array) return data;
  if (dtype === 'f32') return data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
  if (dtype === 'i32') return data instanceof Int32Array ? data : Int32Array.from(data as ArrayLike<number>);
  if (dtype === 'u32') return data instanceof Uint32Array ? data : Uint32Array.from(data as ArrayLike<number>);
  if (dtype === 'i64' && data instanceof BigInt64Array) return data;
  throw new Error(`upload: no storage layout for ${dtype} from ${Object.prototype.toString.call(data)}`);
}

/** A device buffer's bytes as read data: float buffers as float64 values. */
export function readDataOf(dtype: BufferDType, bytes: ArrayBuffer): ReadData {
  if (dtype === 'f32') return Float64Array.from(new Float32Array(bytes));
  if (dtype === 'i32') return new Int32Array(bytes);
  if (dtype === 'u32') return new Uint32Array(bytes);
  if (dtype === 'i64') return new BigInt64Array(bytes);
  throw new Error(`read: ${dtype} buffers are inputs`);
}

