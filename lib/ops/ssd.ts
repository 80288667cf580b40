/**
 * Mamba-2 SSD (state space duality) chunked scan, forward and backward, on the CPU and CUDA.
 *
 * Per head h and step t, with dt' = clamp(softplus(dt + dtBias), dtLimit) (softplus when
 * `dtSoftplus`, the clamp when `dtLimit` is given):
 *   H_t = exp(dt'_t·A_h)·H_{t-1} + dt'_t·x_t ⊗ B_t      (state: headdim × dstate, float32)
 *   y_t = H_t·C_t + D·x_t,  times silu(z_t) when z is given.
 * Shapes follow mamba-ssm's `mamba_chunk_scan_combined`.
 */
import { Tensor } from '../tensor';
import { NativeTensor, native } from '../native';

export interface SsdChunkScanOptions {
  /** (batch, seqlen, heads, headdim); float32, float16, bfloat16 (float64 on the CPU). */
  x: Tensor;
  /** (batch, seqlen, heads), any float dtype. */
  dt: Tensor;
  /** (heads) float32, ≤ 0 (as in Mamba-2, A = −exp(A_log)): the state decays. */
  A: Tensor;
  /** (batch, seqlen, groups, dstate); groups divides heads. */
  B: Tensor;
  /** (batch, seqlen, groups, dstate). */
  C: Tensor;
  /**
   * Longest chunk of the chunked algorithm (default 256); the CPU uses min(chunkSize, 128), CUDA
   * 64 tokens (16-bit inputs) or 32 (float32). Results do not depend on it beyond rounding.
   */
  chunkSize?: number;
  /** (heads) or (heads, headdim) float32 skip connection. */
  D?: Tensor;
  /** (batch, seqlen, heads, headdim) gate: the output is multiplied by silu(z). */
  z?: Tensor;
  /** (heads) float32, added to dt before softplus. */
  dtBias?: Tensor;
  /** Apply softplus to dt + dtBias (default false). */
  dtSoftplus?: boolean;
  /** Clamp dt' to [lo, hi] (default: no clamp). */
  dtLimit?: [number, number];
  /** (batch, heads, headdim, dstate) float32: the state before the first step of each row. */
  initialStates?: Tensor;
  /** (batch, seqlen) int32: several sequences packed in one row; the state restarts where the index changes. */
  seqIdx?: Tensor;
  /** Also return the state after the last step (default false). */
  returnFinalStates?: boolean;
}

export interface SsdChunkScanResult {
  /** (batch, seqlen, heads, headdim), x's dtype. */
  y: Tensor;
  /** (batch, heads, headdim, dstate) float32 (float64 on the CPU float64 path), when asked for. */
  finalStates?: Tensor;
}

export interface SsdChunkScanBackwardOptions extends SsdChunkScanOptions {
  /** Gradient of the loss with respect to y. */
  dy: Tensor;
  /** Gradient with respect to finalStates (optional). */
  dFinalStates?: Tensor;
}

/** Every input's gradient (present when the input was given), in that input's dtype. */
export interface SsdChunkScanGradients {
  dx: Tensor;
  ddt: Tensor;
  dA: Tensor;
  dB: Tensor;
  dC: Tensor;
  dD?: Tensor;
  dz?: Tensor;
  ddtBias?: Tensor;
  dInitialStates?: Tensor;
}

interface NativeSsd {
  ssdForward(opts: object): { y: NativeTensor; finalStates?: NativeTensor; workspaceBytes: number; stagedInputBytes: number };
  ssdBackward(opts: object): Record<string, NativeTensor | number>;
}
const ssdNative = native as unknown as NativeSsd;

const TENSOR_KEYS = ['x', 'dt', 'A', 'B', 'C', 'D', 'z', 'dtBias', 'initialStates', 'seqIdx', 'dy', 'dFinalStates'] as const;

function nativeOptions(opts: SsdChunkScanOptions | SsdChunkScanBackwardOptions): Record<string, unknown> {
  const o: Record<string, unknown> = { ...opts };
  for (const k of TENSOR_KEYS) {
    const t = (opts as unknown as Record<string, unknown>)[k];
    if (t instanceof Tensor) o[k] = t.live();
  }
  return o;
}

let lastWorkspace = { forward: 0, backward: 0, forwardInputCopies: 0 };

/**
 * @internal extra device memory (bytes) the last CUDA forward / backward call allocated, and the
 * bytes of the copies the last CUDA forward made of x, z, B, C, dt (0 when it read them all in place).
 */
export function ssdLastWorkspaceBytes(): { forward: number; backward: number; forwardInputCopies: number } {
  return { ...lastWorkspace };
}

/**
 * The SSD chunked scan (Mamba-2 layer core). CPU: blocked, threaded, vectorised; CUDA: tensor cores
 * for half types, exact float32 FMA for float32. Enqueued like every op; read with `await y.data()`.
 */
export function ssdChunkScan(opts: SsdChunkScanOptions): SsdChunkScanResult {
  const r = ssdNative.ssdForward(nativeOptions(opts));
  lastWorkspace.forward = r.workspaceBytes;
  lastWorkspace.forwardInputCopies = r.stagedInputBytes;
  const out: SsdChunkScanResult = { y: new Tensor(r.y) };
  if (r.finalStates) out.finalStates = new Tensor(r.finalStates);
  return out;
}

/**
 * Gradients of `ssdChunkScan` given dy (and dFinalStates). Recomputes what it needs from the
 * inputs (nothing is saved by the forward call); deterministic: the same inputs give the same bits.
 */
export function ssdChunkScanBackward(opts: SsdChunkScanBackwardOptions): SsdChunkScanGradients {
  const r = ssdNative.ssdBackward(nativeOptions(opts));
  lastWorkspace.backward = r.workspaceBytes as number;
  const out: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(r)) if (k !== 'workspaceBytes') out[k] = new Tensor(v as NativeTensor);
  return out as unknown as SsdChunkScanGradients;
}
