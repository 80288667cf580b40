/**
 * Token choice on the device. A decode step that picks its tokens where the logits are only
 * copies the token ids back to the host (4 bytes a sequence instead of a row of logits).
 */
import { NativeTensor, native } from '../native';
import { Tensor } from '../tensor';

const nat = native as unknown as { argmax(x: Tensor): NativeTensor; sampleTokens(o: object): NativeTensor };

/**
 * Index of the largest value along the last dimension, as an int32 tensor of shape
 * x.shape[:-1]: the first one on ties, and NaN counts as the largest (as torch.argmax).
 * float32/float16/bfloat16 (float64 on the CPU).
 */
export function argmax(x: Tensor): Tensor {
  return new Tensor(nat.argmax(x));
}

export interface SampleTokensOptions {
  /** (..., n) float32 / float16 / bfloat16 logits. */
  logits: Tensor;
  /** (...) float32, per row: <= 0 takes the argmax (greedy). */
  temperature: Tensor;
  /** (...) int32, per row: keep the k highest-ranked tokens (0 or >= n: all). Default: all. */
  topK?: Tensor;
  /** (...) float32, per row: keep the shortest ranking prefix holding this share of the weight (1: all). Default 1. */
  topP?: Tensor;
  /** (...) float32 in [0, 1), per row: the random number the sample is drawn with. */
  uniform: Tensor;
}

/**
 * One token per row of `logits`, sampled from softmax(logits / temperature) on the logits' device,
 * as an int32 tensor of shape logits.shape[:-1]. Tokens are ranked by logit (ties: lower index
 * first); top-k keeps the first k, top-p then the shortest prefix of those whose weight reaches
 * topP of theirs. Weights exp((x - max) / T) are summed in 2^-40 fixed point (exact, in any order);
 * the token is the first kept one, in index order, whose running weight passes floor(uniform · total).
 * A row with temperature <= 0, or whose largest logit is NaN or infinite, gets argmax's choice.
 * The caller supplies the uniforms (a seeded generator on the host makes a completion reproducible
 * on either device); CPU and CUDA round exp differently, so where a uniform falls within a rounding
 * of a boundary they may pick neighbouring tokens.
 */
export function sampleTokens(opts: SampleTokensOptions): Tensor {
  return new Tensor(nat.sampleTokens(opts));
}
