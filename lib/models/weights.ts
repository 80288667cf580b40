/**
 * Where a model's parameters come from: a checkpoint (safetensors, converted to the model's dtype
 * on the way to the device) or, for benchmarks, seeded random values of the same shapes.
 */
import { DType } from '../dtype';
import { Device } from '../device';
import { formatError, shapeStr } from '../errors';
import { Tensor, randn, tensor } from '../tensor';
import { TensorStore } from './safetensors';

export interface WeightSource {
  has(name: string): boolean;
  /** The stored shape of a parameter, when the source knows it before loading. */
  shapeOf(name: string): readonly number[] | undefined;
  /**
   * The parameter `name` as a `dtype` tensor on `device` of shape `shape`. A stored tensor whose
   * shape differs only by size-1 dimensions (conv1d weights are stored (dim, 1, width)) is
   * reshaped; any other mismatch is ERR_FORMAT.
   */
  load(name: string, shape: readonly number[], dtype: DType, device: Device): Promise<Tensor>;
  /** The values of a (small) parameter on the host, in float32, for parameters that are transformed on load. */
  loadHost(name: string, shape: readonly number[]): Promise<Float32Array>;
}

function sameUpToOnes(a: readonly number[], b: readonly number[]): boolean {
  const sa = a.filter((d) => d !== 1);
  const sb = b.filter((d) => d !== 1);
  return sa.length === sb.length && sa.every((d, i) => d === sb[i]) && a.reduce((x, y) => x * y, 1) === b.reduce((x, y) => x * y, 1);
}

export class CheckpointWeights implements WeightSource {
  constructor(private readonly store: TensorStore) {}

  has(name: string): boolean {
    return this.store.has(name);
  }

  shapeOf(name: string): readonly number[] | undefined {
    return this.store.has(name) ? this.store.info(name).shape : undefined;
  }

  private check(name: string, shape: readonly number[]): void {
    const info = this.store.info(name);
    if (!sameUpToOnes(info.shape, shape))
      throw formatError(`${info.file}: tensor ${name} has shape ${shapeStr(info.shape)}, but config.json implies ${shapeStr(shape)}`);
  }

  async load(name: string, shape: readonly number[], dtype: DType, device: Device): Promise<Tensor> {
    this.check(name, shape);
    const raw = await this.store.get(name);
    if (raw.dtype === 'F32') return tensor(raw.data as Float32Array, shape, { dtype, device });
    const stored: DType = raw.dtype === 'F16' ? 'float16' : 'bfloat16';
    if (stored === dtype) return tensor(raw.data as Uint16Array, shape, { dtype, device });
    // Convert on the host, then move: only the target dtype travels to the device.
    const host = tensor(raw.data as Uint16Array, shape, { dtype: stored, device: 'cpu' });
    const conv = host.astype(dtype);
    host.dispose();
    if (device === 'cpu') return conv;
    const moved = conv.to(device);
    conv.dispose();
    return moved;
  }

  async loadHost(name: string, shape: readonly number[]): Promise<Float32Array> {
    this.check(name, shape);
    const raw = await this.store.get(name);
    if (raw.dtype === 'F32') return raw.data as Float32Array;
    const t = tensor(raw.data as Uint16Array, shape, { dtype: raw.dtype === 'F16' ? 'float16' : 'bfloat16', device: 'cpu' });
    const v = (await t.data()) as Float32Array;
    t.dispose();
    return v;
  }
}

/**
 * Seeded random parameters in the right shapes, scaled so that activations stay O(1) through
 * any number of layers (for benchmarks of real model shapes without a download).
 */
export class RandomWeights implements WeightSource {
  private n = 0;
  constructor(private readonly seed = 1) {}

  has(): boolean {
    return true;
  }

  shapeOf(): undefined {
    return undefined;
  }

  private spec(name: string, shape: readonly number[]): { mean: number; std: number } {
    if (/A_log$/.test(name)) return { mean: 1, std: 0.5 };
    if (/\.D$/.test(name)) return { mean: 1, std: 0.1 };
    if (/dt_bias$|dt_proj\.bias$/.test(name)) return { mean: -3, std: 0.5 };
    if (/norm(_f)?\.weight$/.test(name)) return { mean: 1, std: 0.05 };
    if (/embedding/.test(name)) return { mean: 0, std: 1 };
    if (/conv1d\.weight$/.test(name)) return { mean: 0, std: 0.3 };
    if (/bias$/.test(name)) return { mean: 0, std: 0.02 };
    return { mean: 0, std: 1 / Math.sqrt(shape[shape.length - 1]) };
  }

  async load(name: string, shape: readonly number[], dtype: DType, device: Device): Promise<Tensor> {
    return randn(shape, { dtype, device, seed: this.seed * 1000 + this.n++, ...this.spec(name, shape) });
  }

  async loadHost(name: string, shape: readonly number[]): Promise<Float32Array> {
    const t = randn(shape, { seed: this.seed * 1000 + this.n++, ...this.spec(name, shape) });
    const v = (await t.data()) as Float32Array;
    t.dispose();
    return v;
  }
}
