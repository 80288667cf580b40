/** One decode step of the selective state space model, Mamba-1 and Mamba-2 forms. */
import { NativeTensor, native } from '../native';
import { Tensor } from '../tensor';

export interface SelectiveStateUpdateOptions {
  /**
   * Updated in place; contiguous. Mamba-1: (batch, dim, dstate). Mamba-2: (batch, heads,
   * headdim, dstate). float32 or bfloat16 (float64 on the CPU). The rank picks the form.
   */
  state: Tensor;
  /** Mamba-1 (batch, dim); Mamba-2 (batch, heads, headdim). f32/f16/bf16. */
  x: Tensor;
  /**
   * Mamba-1 (batch, dim); Mamba-2 (batch, heads). x's dtype. With dtProj: the low-rank input
   * (batch, rank) of the dt projection instead.
   */
  dt: Tensor;
  /**
   * Mamba-1 only: dt_proj's weight (dim, rank), x's dtype. dt is then dtProj · dt per batch row
   * (rounded to x's dtype, as a separate linear would give), before dtBias and the softplus; on
   * CUDA with up to 8 rows and dstate 16 the product is computed inside the state update kernel.
   */
  dtProj?: Tensor;
  /** Mamba-1 (dim, dstate); Mamba-2 (heads). float32 (float64 with float64 x). */
  A: Tensor;
  /** (batch, groups, dstate), or (batch, dstate) in the Mamba-1 form. x's dtype. */
  B: Tensor;
  C: Tensor;
  /** Mamba-1 (dim); Mamba-2 (heads) or (heads, headdim). float32. */
  D?: Tensor;
  /** Gate, shaped like x: y *= silu(z). */
  z?: Tensor;
  /** Added to dt before the softplus: (dim) or (heads). float32. */
  dtBias?: Tensor;
  /** dt' = softplus(dt + dtBias) when true. Default false. */
  dtSoftplus?: boolean;
  /**
   * Clamp dt' (after the softplus) to [min, max], as transformers' Mamba-2 does with
   * config.time_step_limit; Infinity or null for an open end. Default: no clamp.
   */
  dtLimit?: readonly [number | null, number | null];
  /**
   * (batch) int32: row b uses slot stateIndices[b] of a state pool whose first dimension is the
   * number of slots (one per sequence in flight); a slot < 0 is padding: skipped, y = 0. A slot
   * >= slots is skipped too, with y = NaN (on both devices: a fault visible downstream).
   */
  stateIndices?: Tensor;
  /**
   * A promise that the ops issued just before this one on the device do not write `state` or
   * `stateIndices` (e.g. a decode step's update right after linearConvUpdateProj): on CUDA the
   * batched Mamba-1 kernel then requests the state before waiting for those ops' kernels to
   * finish. Wrong results if they do write it. Default false; ignored on the CPU.
   */
  readStateEarly?: boolean;
}

interface StateUpdateNative {
  selectiveStateUpdate(o: object): NativeTensor;
}
const nat = native as unknown as StateUpdateNative;

/**
 * state = exp(dt'·A)·state + dt'·B·x (per state n); y = Σ_n state·C + D·x, times silu(z).
 * Exactly one step of selectiveScan (Mamba-1) or of the SSD recurrence (Mamba-2).
 * Returns y shaped like x, in x's dtype; `state` is updated in place.
 * On CUDA (sm_90) the parameters A, D, dtBias and dtProj are read while the op issued just before
 * this one may still run (programmatic dependent launch), as a linear layer reads its weight: they
 * must not be that op's output.
 */
export function selectiveStateUpdate(opts: SelectiveStateUpdateOptions): Tensor {
  return new Tensor(nat.selectiveStateUpdate(opts));
}
