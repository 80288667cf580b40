/**
 * Dense ops of the Mamba blocks: embedding, linear (GEMM), RMSNorm with an optional fused
 * residual add, grouped gated RMSNorm (Mamba-2) and elementwise SiLU, softplus, add, mul.
 * All run on the CPU and CUDA with float32/float16/bfloat16 (float64 on the CPU), accumulating
 * in float32 (float64 for float64 data).
 */
import { NativeTensor, native } from '../native';
import { Device, normalizeDevice } from '../device';
import { Tensor } from '../tensor';

interface DenseNative {
  embedding(o: object): NativeTensor;
  linear(o: object): NativeTensor;
  linearConvUpdate(o: object): NativeTensor;
  linearConvUpdateProj(o: object): [NativeTensor, NativeTensor];
  rmsNorm(o: object): { y: NativeTensor; residualOut?: NativeTensor };
  gatedRmsNorm(o: object): NativeTensor;
  silu(x: Tensor): NativeTensor;
  softplus(x: Tensor): NativeTensor;
  add(a: Tensor, b: Tensor): NativeTensor;
  mul(a: Tensor, b: Tensor): NativeTensor;
  linearBackend(device: string): string;
}
const nat = native as unknown as DenseNative;

export interface EmbeddingOptions {
  /** int32 ids, any shape (typically (batch, seqlen)). */
  ids: Tensor;
  /** (vocab, d). */
  weight: Tensor;
}

/**
 * Rows of `weight` picked by `ids`: shape ids.shape + [d], weight's dtype. An id outside
 * [0, vocab) is an ERR_INVALID_ARG error when read on the CPU; on CUDA its row is NaN.
 */
export function embedding(opts: EmbeddingOptions): Tensor {
  return new Tensor(nat.embedding(opts));
}

export interface LinearOptions {
  /** (..., in). */
  x: Tensor;
  /**
   * (out, in), x's dtype (the PyTorch nn.Linear layout). On CUDA (sm_90) a decode-sized product
   * starts reading it (and bias) while the op issued just before may still run: it must not be
   * that op's output.
   */
  weight: Tensor;
  /** (out), any floating dtype. */
  bias?: Tensor;
  /**
   * (in): multiply rmsNorm(x [· silu(normGate)]) · normWeight instead of x (one group over the
   * row, eps normEps, default 1e-5): a decode step's pre-norm folded into its projection. x may
   * then be of any floating dtype (the float32 residual stream, say); the result is in weight's
   * dtype. On CUDA with one row of x in float32 or weight's dtype the matrix-vector kernel
   * normalises on the fly in float32, with no kernel before it (with a gate: where streamWeights
   * would stream the weight, x in its dtype); otherwise rmsNorm runs first and its output,
   * rounded to weight's dtype, is multiplied.
   */
  normWeight?: Tensor;
  /**
   * x's shape and dtype: the gate of a gated norm (Mamba-2's norm before out_proj); needs
   * normWeight. On CUDA it may be a part of linearConvUpdate's output left on the second stream
   * (restOnSide): this op joins that stream first.
   */
  normGate?: Tensor;
  normEps?: number;
  /**
   * (..., out): returns residual + (the product rounded to its dtype), in residual's dtype: a
   * block's residual add after its output projection (in the same kernel on CUDA, <= 8 rows).
   * linear only.
   */
  residual?: Tensor;
  /**
   * int32, x's shape without its last dimension: also receives the argmax of each result row
   * (as argmax() on the result would give). For one row on CUDA the matrix-vector kernel finds it
   * as it writes the row (a decode step's LM head: no pass over the logits after it). linear
   * only, not with residual.
   */
  argmaxOut?: Tensor;
  /**
   * A hint for decode: on CUDA (sm_90), one row of a 16-bit weight over 8 MB with rows of at
   * least 1024 streams through shared memory with bulk copies, the copies issued before the
   * kernel waits for x. Pays where the op before is short and latency-bound (out_proj after the
   * state update); loses after a bandwidth-bound op. Same result; ignored elsewhere.
   */
  streamWeights?: boolean;
}

/**
 * x · weightᵀ + bias → (..., out) in x's dtype. CUDA: cuBLAS when the host has it (loaded at
 * run time; STATESPACE_CUBLAS=0 turns it off), else statespace's own tensor-core kernel
 * (bf16/f16) or an exact-f32 FMA kernel (f32); up to 8 rows (decode) always statespace's
 * bandwidth-bound matrix-vector kernel. CPU: blocked, vectorised, threaded.
 */
export function linear(opts: LinearOptions): Tensor {
  return new Tensor(nat.linear(opts));
}

export interface LinearConvUpdateOptions extends LinearOptions {
  /** x must be 2-D here: (batch, in). */
  x: Tensor;
  /** (batch, channels, width-1), updated in place (as causalConv1dUpdate's convState). */
  convState: Tensor;
  /** (channels, width). */
  convWeight: Tensor;
  /** (channels). */
  convBias?: Tensor;
  /** First output column of the conv's channels: columns [convStart, convStart + channels). */
  convStart: number;
  /** 'silu' or none. */
  activation?: 'silu' | null;
  /**
   * Decode on CUDA, one row with a contiguous x (the norm folded or none): the larger range of
   * columns outside the conv's (Mamba-2's z) is computed on a second stream, launched after the
   * rest, and joined back by an op that reads it on this device (a linear with a normGate, as
   * out_proj reading z; gatedRmsNorm or selectiveStateUpdate with z), by a host read or
   * synchronize, or at the start or end of a graph capture, so that its weights stream while the
   * latency-bound state update runs. Until then only the conv columns and the range beside them
   * may be read on the device, and the result must stay alive. Ignored elsewhere (the whole
   * product is there on return).
   */
  restOnSide?: boolean;
}

/**
 * A decode step's input projection and causal conv in one: linear(x, weight, bias), whose
 * columns [convStart, convStart + channels) then take one causalConv1dUpdate step (the rest is
 * returned as is). On CUDA with up to 8 rows the matrix-vector kernel applies the conv as it
 * writes those columns (one kernel instead of two); otherwise the two ops run in turn.
 */
export function linearConvUpdate(opts: LinearConvUpdateOptions): Tensor {
  return new Tensor(nat.linearConvUpdate(opts));
}

export interface LinearConvUpdateProjOptions extends LinearConvUpdateOptions {
  /** (out, channels), x's dtype: the projection of the conv's columns after the conv step. */
  xProj: Tensor;
}

/**
 * linearConvUpdate, then linear(its conv columns, xProj): a Mamba decode step's in_proj, conv
 * and x_proj. Returns [the linearConvUpdate result, the projection]. On CUDA at batch 9-64 (no
 * bias or norm) the input projection's columns outside the conv are computed on a second stream
 * while the conv columns, the conv step and xProj run on the device's (STATESPACE_FORK=0 turns that
 * off); otherwise the ops run in turn.
 */
export function linearConvUpdateProj(opts: LinearConvUpdateProjOptions): [Tensor, Tensor] {
  const [out, proj] = nat.linearConvUpdateProj(opts);
  return [new Tensor(out), new Tensor(proj)];
}

export interface RmsNormOptions {
  /** (..., d). */
  x: Tensor;
  /** (d). */
  weight: Tensor;
  /** Default 1e-5. */
  eps?: number;
  /** Shaped like x, any floating dtype: added to x before the norm (the residual stream). */
  residual?: Tensor;
}

export interface RmsNormResult {
  /** rmsnorm(x + residual) · weight, x's dtype. */
  y: Tensor;
  /** x + residual in residual's dtype (present when residual was given): the new residual stream. */
  residualOut?: Tensor;
}

/** y = r / sqrt(mean(r²) + eps) · weight over the last dimension, r = x (+ residual). */
export function rmsNorm(opts: RmsNormOptions): RmsNormResult {
  const r = nat.rmsNorm(opts);
  const out: RmsNormResult = { y: new Tensor(r.y) };
  if (r.residualOut) out.residualOut = new Tensor(r.residualOut);
  return out;
}

export interface GatedRmsNormOptions {
  /** (..., d). */
  x: Tensor;
  /** Gate shaped like x, x's dtype. Without it this is a grouped RMSNorm. */
  z?: Tensor;
  /** (d). */
  weight: Tensor;
  /** Default 1e-5. */
  eps?: number;
  /** Normalise over groups of this many consecutive channels; must divide d. Default d. */
  groupSize?: number;
}

/** Mamba-2's norm: r = x·silu(z); y = r / sqrt(mean_group(r²) + eps) · weight. x's dtype. */
export function gatedRmsNorm(opts: GatedRmsNormOptions): Tensor {
  return new Tensor(nat.gatedRmsNorm(opts));
}

/** x·sigmoid(x), elementwise. */
export const silu = (x: Tensor): Tensor => new Tensor(nat.silu(x));
/** log(1 + eˣ), elementwise (x itself above 20). */
export const softplus = (x: Tensor): Tensor => new Tensor(nat.softplus(x));
/** a + b (same shape and dtype). */
export const add = (a: Tensor, b: Tensor): Tensor => new Tensor(nat.add(a, b));
/** a · b (same shape and dtype). */
export const mul = (a: Tensor, b: Tensor): Tensor => new Tensor(nat.mul(a, b));

/**
 * The GEMM `linear` uses on a device right now: 'cpu', 'cublas (libcublas.so.N)', or
 * 'builtin (<why cuBLAS is not used>)' (not found, or STATESPACE_CUBLAS=0).
 */
export const linearBackend = (device: Device): string => nat.linearBackend(normalizeDevice(device));
