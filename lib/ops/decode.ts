/**
 * Fused decode-step ops: a Mamba block's RMSNorm (with the residual add), input projection and
 * causal conv step as one call (or Mamba-2's gated norm and output projection); on CUDA with up to 8 rows one matrix-vector kernel does all
 * three (each block normalises the rows itself, the conv is applied to its columns on the way
 * out), otherwise rmsNorm, linear and the conv step run in turn with the same results.
 */
import { NativeTensor, native } from '../native';
import { Tensor } from '../tensor';

interface DecodeNative {
  rmsNormLinear(o: object): { y: NativeTensor; residualOut?: NativeTensor };
}
const nat = native as unknown as DecodeNative;

export interface RmsNormLinearOptions {
  /** (batch, hidden). */
  x: Tensor;
  /** (batch, hidden), any floating dtype: added to x before the norm (the residual stream). */
  residual?: Tensor;
  /** Gate shaped like x, x's dtype: r = (x + residual) · silu(z) before the norm (Mamba-2's gated norm, one group). */
  z?: Tensor;
  /** (hidden): the RMSNorm's weight. */
  normWeight: Tensor;
  /** Default 1e-5. */
  eps?: number;
  /** (out, hidden), x's dtype: the projection. */
  weight: Tensor;
  /** (out). */
  bias?: Tensor;
  /** (batch, channels, width-1), updated in place: a causal conv step on output columns [convStart, convStart + channels). */
  convState?: Tensor;
  /** (channels, width); required with convState. */
  convWeight?: Tensor;
  convBias?: Tensor;
  convStart?: number;
  activation?: 'silu' | null;
}

export interface RmsNormLinearResult {
  /** (batch, out) in x's dtype: linear(rmsNorm(x + residual)), the conv columns after the conv step. */
  y: Tensor;
  /** x + residual in the residual's dtype (when residual is given). */
  residualOut?: Tensor;
}

/**
 * rmsNorm (+ residual, or gated by z) → linear (+ causal conv step on some columns), fused on
 * CUDA for decode: a block's norm with in_proj and the conv, or Mamba-2's gated norm with out_proj.
 */
export function rmsNormLinear(opts: RmsNormLinearOptions): RmsNormLinearResult {
  const r = nat.rmsNormLinear(opts);
  const out: RmsNormLinearResult = { y: new Tensor(r.y) };
  if (r.residualOut) out.residualOut = new Tensor(r.residualOut);
  return out;
}
