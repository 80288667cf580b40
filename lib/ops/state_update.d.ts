// TEMPORARY (models branch only): the declaration of an op that another branch implements, so the
// model code type-checks before the merge. DELETE THIS FILE AT MERGE: the real .ts beside it replaces it.
import type { Tensor } from '../tensor';

export declare function selectiveStateUpdate(opts: {
  state: Tensor;
  x: Tensor;
  dt: Tensor;
  A: Tensor;
  B: Tensor;
  C: Tensor;
  D?: Tensor;
  z?: Tensor;
  dtBias?: Tensor;
  dtSoftplus?: boolean;
}): Tensor;
