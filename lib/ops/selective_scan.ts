/**
 * Mamba-1 selective scan (compatible with mamba-ssm's selective_scan_fn), CPU and CUDA.
 *
 *   delta' = softplus(delta + deltaBias) when deltaSoftplus, else delta + deltaBias
 *   x_t = exp(delta'_t A) * x_{t-1} + delta'_t B_t u_t        (state in f32, f64 on the float64 path)
 *   y_t = <C_t, x_t> + D u_t;  y_t *= silu(z_t) when z is given
 *
 * With `seqIdx` (batch, seqlen) int32 a row packs several sequences: where the index changes
 * the state restarts from zero. `initialState` applies only at the start of each row.
 */
import { Tensor } from '../tensor';
import { native } from '../native';

export interface SelectiveScanOptions {
  /** (batch, dim, seqlen): float32, float16, bfloat16 (or float64 on the CPU). */
  u: Tensor;
  /** (batch, dim, seqlen), same dtype as u. */
  delta: Tensor;
  /** (dim, dstate) float32 (float64 with float64 inputs); dstate in [1, 256]. */
  A: Tensor;
  /** (dim, dstate) time-invariant, (batch, dstate, seqlen), or (batch, groups, dstate, seqlen); u's dtype. */
  B: Tensor;
  /** Same forms as B (chosen independently). */
  C: Tensor;
  /** (dim) float32: skip connection y += D u. */
  D?: Tensor;
  /** (batch, dim, seqlen), u's dtype: gate y *= silu(z). */
  z?: Tensor;
  /** (dim) float32, added to delta before the softplus. */
  deltaBias?: Tensor;
  /** Apply softplus to delta + deltaBias. Default false. */
  deltaSoftplus?: boolean;
  /** (batch, dim, dstate) float32: state before the first step. Default zeros. */
  initialState?: Tensor;
  /** (batch, seqlen) int32: sequence index of each step; the state restarts where it changes. */
  seqIdx?: Tensor;
}

export interface SelectiveScanForwardOptions extends SelectiveScanOptions {
  /** Also return the state after the last step. Default false. */
  returnLastState?: boolean;
  /**
   * (batch, dim, dstate) float32 (float64 on the float64 path), contiguous: receives the state
   * after the last step in place (e.g. a slot of a decode state cache: no copy after the scan) and
   * is returned as lastState; implies returnLastState. It may be initialState itself (continuing a
   * sequence in its own slot): the scan then writes a temporary and copies it in.
   */
  lastStateOut?: Tensor;
  /**
   * Also return `checkpoints`, the states a later `selectiveScanBackward` on the same inputs
   * would otherwise recompute with a forward pass of its own (CUDA only; the CPU backward needs
   * none). Default false.
   */
  returnCheckpoints?: boolean;
}

export interface SelectiveScanResult {
  /** (batch, dim, seqlen), u's dtype. */
  y: Tensor;
  /** (batch, dim, dstate) float32, when returnLastState. */
  lastState?: Tensor;
  /** CUDA, when returnCheckpoints: (batch, dim, chunks, dstate) float32, the state every chunk of steps. */
  checkpoints?: Tensor;
}

export interface SelectiveScanBackwardOptions extends SelectiveScanOptions {
  /** Gradient of the loss with respect to y: (batch, dim, seqlen), u's dtype. */
  dy: Tensor;
  /** Gradient with respect to lastState: (batch, dim, dstate) float32. */
  dLastState?: Tensor;
  /**
   * The forward's `checkpoints` (returnCheckpoints) for these same inputs: the CUDA backward then
   * skips its forward pass. Checkpoints of other inputs give wrong gradients. Ignored on the CPU.
   */
  checkpoints?: Tensor;
}

/** Gradients of every input, shaped like the input (dB/dC follow B's and C's forms). */
export interface SelectiveScanGradients {
  du: Tensor;
  ddelta: Tensor;
  dA: Tensor;
  dB: Tensor;
  dC: Tensor;
  /** When D was given. */
  dD?: Tensor;
  /** When z was given. */
  dz?: Tensor;
  /** When deltaBias was given. */
  dDeltaBias?: Tensor;
  /** When initialState was given. */
  dInitialState?: Tensor;
}

type NativeOut = Record<string, ConstructorParameters<typeof Tensor>[0] | undefined>;
interface ScanNative {
  selectiveScanForward(opts: object): NativeOut;
  selectiveScanBackward(opts: object): NativeOut;
}
const scanNative = native as unknown as ScanNative;

function wrap(o: NativeOut): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(o)) if (v) out[k] = new Tensor(v);
  return out;
}

/** Runs the selective scan. On CUDA the work is enqueued and this returns at once. */
export function selectiveScan(opts: SelectiveScanForwardOptions): SelectiveScanResult {
  return wrap(scanNative.selectiveScanForward(opts)) as unknown as SelectiveScanResult;
}

/**
 * Gradients of the selective scan given dy (and dLastState). Recomputes the forward states from
 * checkpoints: the forward's when passed (returnCheckpoints), else from a forward pass of its own. Reductions over batch and time are deterministic:
 * two calls with the same inputs give bitwise equal gradients.
 */
export function selectiveScanBackward(opts: SelectiveScanBackwardOptions): SelectiveScanGradients {
  return wrap(scanNative.selectiveScanBackward(opts)) as unknown as SelectiveScanGradients;
}
