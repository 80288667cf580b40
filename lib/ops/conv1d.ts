/**
 * Depthwise causal 1-D convolution (the short convolution of Mamba blocks), its gradient, and
 * the one-step update used while decoding.
 */
import { NativeTensor, native } from '../native';
import { Tensor } from '../tensor';

export interface CausalConv1dOptions {
  /** (batch, dim, seqlen), float32/float16/bfloat16 (float64 on the CPU). */
  x: Tensor;
  /** (dim, width), any width >= 1; any floating dtype. */
  weight: Tensor;
  /** (dim). */
  bias?: Tensor;
  /** 'silu' applies SiLU to the output. Default: none. */
  activation?: 'silu' | null;
  /**
   * (batch, dim, width-1) in x's dtype: the width-1 inputs that came before x[..., 0]
   * (zeros when absent). They belong to the sequence of seqIdx[b, 0].
   */
  initialStates?: Tensor;
  /**
   * (batch, seqlen) int32: packs several sequences in one row; the convolution does not reach
   * across a change of index.
   */
  seqIdx?: Tensor;
  /** Also return finalStates: the last width-1 inputs (see CausalConv1dResult). */
  returnFinalStates?: boolean;
  /**
   * (batch, dim, width-1), x's dtype, contiguous: receives finalStates in place (e.g. a slot of a
   * decode state cache: no copy after the op) and is returned as finalStates; implies
   * returnFinalStates. It may be initialStates itself (continuing a sequence in its own slot): the
   * op then writes a temporary and copies it in. causalConv1d only.
   */
  finalStatesOut?: Tensor;
}

export interface CausalConv1dResult {
  /**
   * (batch, dim, seqlen), x's dtype. On CUDA, when x is channels-last (channel stride 1, e.g. a
   * transposed slice of a (batch, seqlen, channels) tensor), x is read in place and y is
   * channels-last too (a view over (batch, seqlen, dim) memory); otherwise y is contiguous.
   */
  y: Tensor;
  /**
   * (batch, dim, width-1), x's dtype: the last width-1 inputs of the row (taken from
   * initialStates or zeros when seqlen < width-1), with entries from a sequence other than the
   * last one zeroed. Passing it as initialStates continues the sequence exactly.
   */
  finalStates?: Tensor;
}

export interface CausalConv1dBackwardOptions extends Omit<CausalConv1dOptions, 'finalStatesOut' | 'returnFinalStates'> {
  /** Gradient of y: (batch, dim, seqlen), x's dtype. */
  dy: Tensor;
  /** Gradient of finalStates: (batch, dim, width-1). */
  dFinalStates?: Tensor;
}

export interface CausalConv1dGrads {
  dx: Tensor;
  /** (dim, width) in weight's dtype (summed over the batch in a fixed order: reproducible). */
  dweight: Tensor;
  /** Present when bias was given. */
  dbias?: Tensor;
  /** Present when initialStates was given. */
  dInitialStates?: Tensor;
}

export interface CausalConv1dUpdateOptions {
  /** One step: (batch, dim). */
  x: Tensor;
  /** (batch, dim, width-1), contiguous, any floating dtype: shifted left and x appended, in place. */
  convState: Tensor;
  weight: Tensor;
  bias?: Tensor;
  activation?: 'silu' | null;
  /**
   * (batch) int32: row b uses slot convStateIndices[b] of a (slots, dim, width-1) convState
   * (a state pool, one slot per sequence in flight); a slot < 0 is padding: skipped, y = 0.
   * A slot >= slots is skipped too, with y = NaN (on both devices: a fault visible downstream).
   */
  convStateIndices?: Tensor;
}

interface Conv1dNative {
  causalConv1d(o: object): { y: NativeTensor; finalStates?: NativeTensor };
  causalConv1dBackward(o: object): { dx: NativeTensor; dweight: NativeTensor; dbias?: NativeTensor; dInitialStates?: NativeTensor };
  causalConv1dUpdate(o: object): NativeTensor;
}
const nat = native as unknown as Conv1dNative;
const wrap = (t: NativeTensor | undefined) => (t ? new Tensor(t) : undefined);

/**
 * y[b,d,t] = act(bias[d] + Σ_k weight[d,k]·x[b,d,t-(width-1)+k]), inputs before t = 0 from
 * initialStates (or zero).
 */
export function causalConv1d(opts: CausalConv1dOptions): CausalConv1dResult {
  const r = nat.causalConv1d(opts);
  const out: CausalConv1dResult = { y: new Tensor(r.y) };
  if (r.finalStates) out.finalStates = new Tensor(r.finalStates);
  return out;
}

/** Gradients of causalConv1d with respect to x, weight, bias and initialStates. */
export function causalConv1dBackward(opts: CausalConv1dBackwardOptions): CausalConv1dGrads {
  const r = nat.causalConv1dBackward(opts);
  const g: CausalConv1dGrads = { dx: new Tensor(r.dx), dweight: new Tensor(r.dweight) };
  if (r.dbias) g.dbias = wrap(r.dbias);
  if (r.dInitialStates) g.dInitialStates = wrap(r.dInitialStates);
  return g;
}

/**
 * One decode step: y = act(bias + Σ_{k<width-1} weight[:,k]·convState[...,k] + weight[:,width-1]·x);
 * then convState shifts left by one and takes x as its last column. Returns y (batch, dim).
 */
export function causalConv1dUpdate(opts: CausalConv1dUpdateOptions): Tensor {
  return new Tensor(nat.causalConv1dUpdate(opts));
}
