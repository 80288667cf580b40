// TEMPORARY (models branch only): the declaration of an op that another branch implements, so the
// model code type-checks before the merge. DELETE THIS FILE AT MERGE: the real .ts beside it replaces it.
import type { Tensor } from '../tensor';

export declare function selectiveScan(opts: {
  u: Tensor;
  delta: Tensor;
  A: Tensor;
  B: Tensor;
  C: Tensor;
  D?: Tensor;
  z?: Tensor;
  deltaBias?: Tensor;
  deltaSoftplus?: boolean;
  initialState?: Tensor;
  returnLastState?: boolean;
}): { y: Tensor; lastState?: Tensor };
