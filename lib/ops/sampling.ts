/**
 * Token choice on the device. A decode step that picks its tokens where the logits are only
 * copies the token ids back to the host (4 bytes a sequence instead of a row of logits).
 */
import { NativeTensor, native } from '../native';
import { Tensor } from '../tensor';

const nat = native as unknown as { argmax(x: Tensor): NativeTensor };

/**
 * Index of the largest value along the last dimension, as an int32 tensor of shape
 * x.shape[:-1]: the first one on ties, and NaN counts as the largest (as torch.argmax).
 * float32/float16/bfloat16 (float64 on the CPU).
 */
export function argmax(x: Tensor): Tensor {
  return new Tensor(nat.argmax(x));
}
