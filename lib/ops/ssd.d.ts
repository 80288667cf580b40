// TEMPORARY (models branch only): the declaration of an op that another branch implements, so the
// model code type-checks before the merge. DELETE THIS FILE AT MERGE: the real .ts beside it replaces it.
import type { Tensor } from '../tensor';

export declare function ssdChunkScan(opts: {
  x: Tensor;
  dt: Tensor;
  A: Tensor;
  B: Tensor;
  C: Tensor;
  chunkSize?: number;
  D?: Tensor;
  z?: Tensor;
  dtBias?: Tensor;
  dtSoftplus?: boolean;
  dtLimit?: [number, number];
  initialStates?: Tensor;
  seqIdx?: Tensor;
  returnFinalStates?: boolean;
}): { y: Tensor; finalStates?: Tensor };
