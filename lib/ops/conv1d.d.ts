// TEMPORARY (models branch only): the declaration of an op that another branch implements, so the
// model code type-checks before the merge. DELETE THIS FILE AT MERGE: the real .ts beside it replaces it.
import type { Tensor } from '../tensor';

export declare function causalConv1d(opts: {
  x: Tensor;
  weight: Tensor;
  bias?: Tensor;
  activation?: 'silu' | null;
  initialStates?: Tensor;
  seqIdx?: Tensor;
  returnFinalStates?: boolean;
}): { y: Tensor; finalStates?: Tensor };

export declare function causalConv1dUpdate(opts: {
  x: Tensor;
  convState: Tensor;
  weight: Tensor;
  bias?: Tensor;
  activation?: 'silu' | null;
}): Tensor;
