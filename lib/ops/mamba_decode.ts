/**
 * @internal The Mamba-1 batch-1 decode megakernel: every layer of a folded decode step (RMSNorm,
 * in_proj, conv step, x_proj, dt_proj, state update, gate, out_proj, residual add) in one
 * persistent CUDA kernel whose weight streams run on across layers. lib/models/mamba.ts calls it;
 * not exported from the package root.
 */
import { native } from '../native';
import { Tensor } from '../tensor';

export interface MambaDecodeStackOptions {
  /** The residual stream (1, hidden) float32, updated in place to the stack's output. */
  h: Tensor;
  /** One tensor per layer each (weights in one 16-bit dtype). */
  normWeight: Tensor[];
  inProj: Tensor[];
  convWeight: Tensor[];
  convBias?: Tensor[];
  /** (1, intermediate, width - 1), updated in place. */
  convState: Tensor[];
  xProj: Tensor[];
  dtProj: Tensor[];
  /** float32 (intermediate). */
  dtBias: Tensor[];
  /** float32 (intermediate, dstate): -exp(A_log). */
  A: Tensor[];
  D?: Tensor[];
  /** (1, intermediate, dstate) float32 or bfloat16, updated in place. */
  ssmState: Tensor[];
  outProj: Tensor[];
  eps: number;
}

interface MambaDecodeNative {
  mambaDecodeStack(o: object): boolean;
}
const nat = native as unknown as MambaDecodeNative;

/**
 * Runs the stack if the megakernel takes these inputs (CUDA sm_90, 16-bit weights, sizes it
 * supports, STATESPACE_DECODE_MEGAKERNEL not '0'; read per call, i.e. when a decode step is
 * captured) and returns true; otherwise does nothing and returns false.
 */
export function mambaDecodeStack(opts: MambaDecodeStackOptions): boolean {
  return nat.mambaDecodeStack(opts);
}
