/**
 * copyInto: writes `src` into `dst`, a contiguous tensor or a contiguous view of one (a slice
 * along the first dimension, such as one slot of a batched state cache), converting the element
 * type. Same shape and device. Enqueued like every op; `dst` is modified in place.
 */
import { native } from '../native';
import { Tensor } from '../tensor';

type CopyIntoNative = (dst: Tensor, src: Tensor) => void;

export function copyInto(dst: Tensor, src: Tensor): void {
  (native as unknown as { copyInto: CopyIntoNative }).copyInto(dst.live(), src.live());
}
