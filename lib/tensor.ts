/**
 * Tensor: shape, strides, dtype and device over natively owned storage.
 * Ops on CUDA are enqueued on the device's stream; CPU ops run on a host queue off the event
 * loop. Reading (`await t.data()`) waits for the work that produces the tensor without
 * blocking the event loop.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomInt } from 'node:crypto';
import { DType, TensorData, isDType, isHalf } from './dtype';
import { Device, normalizeDevice } from './device';
import { argError, dtypeError, makeError, shapeError, shapeStr } from './errors';
import { NativeTensor, native } from './native';

export interface CreateOptions {
  dtype?: DType;
  device?: Device;
}

export interface RandomOptions extends CreateOptions {
  /** Same seed, same numbers on every device. Default: a fresh random seed. */
  seed?: number;
}

type Scope = Set<Tensor>;
const scopes = new AsyncLocalStorage<Scope>();

export class Tensor {
  /** @internal native storage handle; null once disposed */
  _h: object | null;
  readonly shape: readonly number[];
  /** Element strides. */
  readonly strides: readonly number[];
  /** Element offset into the storage. */
  readonly offset: number;
  readonly dtype: DType;
  readonly device: Device;

  /** @internal use the creation functions (tensor, zeros, randn, ...) instead */
  constructor(n: NativeTensor) {
    this._h = n._h;
    this.shape = Object.freeze([...n.shape]);
    this.strides = Object.freeze(n.strides ? [...n.strides] : contiguousStrides(n.shape));
    this.offset = n.offset ?? 0;
    this.dtype = n.dtype as DType;
    this.device = n.device as Device;
    scopes.getStore()?.add(this);
  }

  /** Number of elements. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  get ndim(): number {
    return this.shape.length;
  }
  get disposed(): boolean {
    return this._h === null;
  }
  get isContiguous(): boolean {
    let expect = 1;
    for (let i = this.ndim - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== expect) return false;
      expect *= this.shape[i];
    }
    return true;
  }

  /** Values as Float32Array (float32/float16/bfloat16), Int32Array or Float64Array. */
  async data(): Promise<TensorData> {
    return this.view(await native.read(this.live(), false), false) as TensorData;
  }
  /** Like data(), but blocks until the values are ready. For scripts. */
  dataSync(): TensorData {
    return this.view(native.readSync(this.live(), false), false) as TensorData;
  }
  /** Raw 16-bit patterns of a float16/bfloat16 tensor. */
  async bits(): Promise<Uint16Array> {
    this.needHalf();
    return new Uint16Array(await native.read(this.live(), true));
  }
  bitsSync(): Uint16Array {
    this.needHalf();
    return new Uint16Array(native.readSync(this.live(), true));
  }
  /** Values as (nested) JS arrays. */
  async array(): Promise<unknown> {
    return nest(Array.from(await this.data()), this.shape);
  }

  /** A copy on another device (or this tensor itself when already there). */
  to(device: Device): Tensor {
    const d = normalizeDevice(device);
    if (d === this.device) return this;
    return new Tensor(native.copyTo(this.live(), this.dtype, d));
  }
  /** A copy converted to another dtype (or this tensor itself when already of that dtype). */
  astype(dtype: DType): Tensor {
    if (!isDType(dtype)) throw dtypeError(`dtype: unknown dtype ${JSON.stringify(dtype)}`);
    if (dtype === this.dtype) return this;
    return new Tensor(native.copyTo(this.live(), dtype, this.device));
  }
  /** A contiguous copy (or this tensor itself when already contiguous). */
  contiguous(): Tensor {
    return this.isContiguous ? this : this.clone();
  }
  /** A fresh contiguous copy. */
  clone(): Tensor {
    return new Tensor(native.copyTo(this.live(), this.dtype, this.device));
  }
  /** Same data, new shape (one entry may be -1). A view when contiguous, else a copy. */
  reshape(shape: readonly number[]): Tensor {
    const s = inferShape(shape, this.size);
    const src = this.contiguous();
    return src.makeView(s, contiguousStrides(s), src.offset);
  }
  /** Reorders dimensions (a view). */
  permute(...dims: number[]): Tensor {
    if (dims.length !== this.ndim || new Set(dims.map((d) => this.axis(d))).size !== this.ndim)
      throw argError(`dims: expected a permutation of ${this.ndim} dimensions, got [${dims.join(', ')}]`);
    const ax = dims.map((d) => this.axis(d));
    return this.makeView(ax.map((a) => this.shape[a]), ax.map((a) => this.strides[a]), this.offset);
  }
  /** Swaps two dimensions (a view). */
  transpose(a: number, b: number): Tensor {
    const dims = this.shape.map((_, i) => i);
    const [x, y] = [this.axis(a), this.axis(b)];
    [dims[x], dims[y]] = [dims[y], dims[x]];
    return this.permute(...dims);
  }
  /** Elements [start, end) along one dimension (a view). */
  slice(dim: number, start: number, end?: number): Tensor {
    const d = this.axis(dim);
    const n = this.shape[d];
    const e = Math.min(end ?? n, n);
    if (!Number.isInteger(start) || start < 0 || start > e)
      throw makeError('range', 'ERR_SHAPE', `slice: range [${start}, ${e}) is outside dimension ${d} of size ${n}`);
    const shape = [...this.shape];
    shape[d] = e - start;
    return this.makeView(shape, [...this.strides], this.offset + start * this.strides[d]);
  }

  /** Dimension `dim` split into `sizes` (their product must equal its size); a view (torch's unflatten). */
  unflatten(dim: number, sizes: readonly number[]): Tensor {
    const d = this.axis(dim);
    if (sizes.some((x) => !Number.isInteger(x) || x < 0) || sizes.reduce((a, b) => a * b, 1) !== this.shape[d])
      throw shapeError(`unflatten: (${sizes.join(', ')}) does not split dimension ${d} of ${this.toString()}`);
    const inner = sizes.map((_, i) => this.strides[d] * sizes.slice(i + 1).reduce((a, b) => a * b, 1));
    return this.makeView(
      [...this.shape.slice(0, d), ...sizes, ...this.shape.slice(d + 1)],
      [...this.strides.slice(0, d), ...inner, ...this.strides.slice(d + 1)],
      this.offset,
    );
  }
  /** Without its size-1 dimension `dim` (a view). */
  squeeze(dim: number): Tensor {
    const d = this.axis(dim);
    if (this.shape[d] !== 1) throw shapeError(`squeeze: dimension ${d} of ${this.toString()} is not of size 1`);
    return this.makeView(this.shape.filter((_, i) => i !== d), this.strides.filter((_, i) => i !== d), this.offset);
  }

  /** Releases this tensor's memory now (queued work that uses it still completes). */
  dispose(): void {
    if (this._h) native.release(this._h);
    this._h = null;
  }
  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return `Tensor(${shapeStr(this.shape)}, ${this.dtype}, ${this.device}${this.disposed ? ', disposed' : ''})`;
  }

  /** @internal throws ERR_DISPOSED when disposed */
  live(): this {
    if (!this._h) throw makeError('plain', 'ERR_DISPOSED', `${this.toString()}: the tensor has been disposed`);
    return this;
  }

  private makeView(shape: number[], strides: number[], offset: number): Tensor {
    const h = native.view(this.live(), shape, strides, offset);
    return new Tensor({ _h: h, shape, strides, offset, dtype: this.dtype, device: this.device });
  }
  private axis(d: number): number {
    const a = d < 0 ? d + this.ndim : d;
    if (!Number.isInteger(a) || a < 0 || a >= this.ndim)
      throw argError(`dim: ${d} is out of range for a tensor with ${this.ndim} dimensions`);
    return a;
  }
  private needHalf(): void {
    if (!isHalf(this.dtype)) throw dtypeError(`bits: only float16/bfloat16 tensors have 16-bit patterns, this one is ${this.dtype}`);
  }
  private view(buf: ArrayBuffer, bits: boolean): TensorData | Uint16Array {
    if (bits) return new Uint16Array(buf);
    if (this.dtype === 'int32') return new Int32Array(buf);
    if (this.dtype === 'float64') return new Float64Array(buf);
    return new Float32Array(buf);
  }
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    st[i] = s;
    s *= shape[i];
  }
  return st;
}

function inferShape(shape: readonly number[], size: number): number[] {
  const s = [...shape];
  const free = s.indexOf(-1);
  if (free >= 0) {
    const rest = s.reduce((a, b, i) => (i === free ? a : a * b), 1);
    if (rest === 0 || size % rest !== 0) throw shapeError(`reshape: cannot infer -1 in ${shapeStr(shape)} for ${size} elements`);
    s[free] = size / rest;
  }
  checkShape(s);
  if (s.reduce((a, b) => a * b, 1) !== size) throw shapeError(`reshape: ${shapeStr(s)} does not hold ${size} elements`);
  return s;
}

function checkShape(shape: readonly number[], name = 'shape'): void {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0))
    throw shapeError(`${name}: expected non-negative integers, got ${JSON.stringify(shape)}`);
}

function nest(flat: number[], shape: readonly number[]): unknown {
  if (shape.length <= 1) return flat;
  const [n, ...rest] = shape;
  const step = flat.length / n;
  return Array.from({ length: n }, (_, i) => nest(flat.slice(i * step, (i + 1) * step), rest));
}

function flatten(data: unknown, shape: number[], out: number[], depth = 0): void {
  if (Array.isArray(data)) {
    if (shape.length <= depth) shape.push(data.length);
    else if (shape[depth] !== data.length) throw shapeError(`data: ragged nested array at depth ${depth}`);
    for (const x of data) flatten(x, shape, out, depth + 1);
  } else if (typeof data === 'number') {
    if (depth !== shape.length) throw shapeError(`data: ragged nested array at depth ${depth}`);
    out.push(data);
  } else {
    throw argError(`data: expected numbers, nested arrays of numbers or a typed array`);
  }
}

type Input = number[] | number[][] | unknown[] | Float32Array | Float64Array | Int32Array | Uint16Array;

/**
 * A tensor from JS data. `shape` defaults to the nesting of `data`. dtype defaults to
 * int32 for Int32Array, float64 for Float64Array and float32 otherwise; a Uint16Array holds
 * raw float16/bfloat16 bits and needs that dtype.
 */
export function tensor(data: Input, shape?: readonly number[], opts: CreateOptions = {}): Tensor {
  const device = normalizeDevice(opts.device);
  let dtype = opts.dtype ?? (data instanceof Int32Array ? 'int32' : data instanceof Float64Array ? 'float64' : 'float32');
  if (!isDType(dtype)) throw dtypeError(`dtype: unknown dtype ${JSON.stringify(dtype)}`);
  let arr: Float32Array | Float64Array | Int32Array | Uint16Array;
  let s: number[];
  if (ArrayBuffer.isView(data)) {
    if (!(data instanceof Float32Array || data instanceof Float64Array || data instanceof Int32Array || data instanceof Uint16Array))
      throw argError('data: expected Float32Array, Float64Array, Int32Array or Uint16Array');
    if (data instanceof Uint16Array && !isHalf(dtype))
      throw dtypeError(`data: a Uint16Array holds raw float16/bfloat16 bits; pass dtype 'float16' or 'bfloat16', not '${dtype}'`);
    arr = data;
    s = shape ? [...shape] : [data.length];
  } else {
    const flat: number[] = [];
    const nested: number[] = [];
    flatten(data, nested, flat);
    s = shape ? [...shape] : nested;
    arr = dtype === 'int32' ? Int32Array.from(flat) : dtype === 'float64' ? Float64Array.from(flat) : Float32Array.from(flat);
  }
  checkShape(s);
  dtype = dtype as DType;
  return new Tensor(native.fromData(arr, s, dtype, device));
}

/**
 * Writes `src` into `dst` in place, converting the element type: `dst` is contiguous or a
 * contiguous view of one (such as one slot of a batched state cache: `cache.slice(0, i, i + 1)`).
 * Same shape; same device, or a CPU `src` into a CUDA `dst` (one upload, no device temporary: a
 * decode step's inputs). Enqueued like every op.
 */
export function copyInto(dst: Tensor, src: Tensor): void {
  native.copyInto(dst.live(), src.live());
}

const FILL_UNIFORM = 0;
const FILL_NORMAL = 1;
const FILL_CONSTANT = 2;

function filled(shape: readonly number[], opts: CreateOptions, kind: number, seed: number, a: number, b: number): Tensor {
  checkShape(shape);
  const dtype = opts.dtype ?? 'float32';
  if (!isDType(dtype)) throw dtypeError(`dtype: unknown dtype ${JSON.stringify(dtype)}`);
  return new Tensor(native.fill([...shape], dtype, normalizeDevice(opts.device), kind, seed, a, b));
}

function seedOf(opts: RandomOptions): number {
  if (opts.seed === undefined) return randomInt(0, 2 ** 47);
  if (!Number.isSafeInteger(opts.seed) || opts.seed < 0) throw argError(`seed: expected a non-negative safe integer, got ${opts.seed}`);
  return opts.seed;
}

export const zeros = (shape: readonly number[], opts: CreateOptions = {}) => filled(shape, opts, FILL_CONSTANT, 0, 0, 0);
export const ones = (shape: readonly number[], opts: CreateOptions = {}) => filled(shape, opts, FILL_CONSTANT, 0, 1, 0);
export const full = (shape: readonly number[], value: number, opts: CreateOptions = {}) =>
  filled(shape, opts, FILL_CONSTANT, 0, value, 0);
/** Uninitialised memory (filled with NaN on the CPU in debug builds of your code: never rely on contents). */
export const empty = (shape: readonly number[], opts: CreateOptions = {}) => filled(shape, opts, FILL_CONSTANT, 0, Number.NaN, 0);
/** Normal samples, mean + std * N(0, 1). */
export const randn = (shape: readonly number[], opts: RandomOptions & { mean?: number; std?: number } = {}) =>
  filled(shape, opts, FILL_NORMAL, seedOf(opts), opts.mean ?? 0, opts.std ?? 1);
/** Uniform samples in [low, high). */
export const rand = (shape: readonly number[], opts: RandomOptions & { low?: number; high?: number } = {}) =>
  filled(shape, opts, FILL_UNIFORM, seedOf(opts), opts.low ?? 0, (opts.high ?? 1) - (opts.low ?? 0));

function collect(v: unknown, keep: Set<Tensor>, depth = 0): void {
  if (depth > 4 || v === null || typeof v !== 'object') return;
  if (v instanceof Tensor) keep.add(v);
  else if (Array.isArray(v)) v.forEach((x) => collect(x, keep, depth + 1));
  else if (Object.getPrototypeOf(v) === Object.prototype) Object.values(v).forEach((x) => collect(x, keep, depth + 1));
}

/**
 * Runs fn and disposes every tensor created inside it, except those it returns (also inside
 * arrays or plain objects). Works with async functions: the scope follows the async context.
 */
export function tidy<T>(fn: () => T): T {
  const scope: Scope = new Set();
  const parent = scopes.getStore();
  const finish = (result: unknown) => {
    const keep = new Set<Tensor>();
    collect(result, keep);
    for (const t of scope) {
      if (keep.has(t)) parent?.add(t);
      else t.dispose();
    }
  };
  const result = scopes.run(scope, fn);
  if (result instanceof Promise) {
    return result.then(
      (r) => {
        finish(r);
        return r;
      },
      (e) => {
        finish(undefined);
        throw e;
      },
    ) as T;
  }
  finish(result);
  return result;
}
