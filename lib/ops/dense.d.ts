// TEMPORARY (models branch only): the declaration of an op that another branch implements, so the
// model code type-checks before the merge. DELETE THIS FILE AT MERGE: the real .ts beside it replaces it.
import type { Tensor } from '../tensor';

export declare function embedding(opts: { ids: Tensor; weight: Tensor }): Tensor;
export declare function linear(opts: { x: Tensor; weight: Tensor; bias?: Tensor }): Tensor;
export declare function rmsNorm(opts: { x: Tensor; weight: Tensor; eps: number }): Tensor;
export declare function gatedRmsNorm(opts: { x: Tensor; z: Tensor; weight: Tensor; eps: number; groupSize: number }): Tensor;
export declare function silu(x: Tensor): Tensor;
export declare function softplus(x: Tensor): Tensor;
export declare function add(a: Tensor, b: Tensor): Tensor;
export declare function mul(a: Tensor, b: Tensor): Tensor;
