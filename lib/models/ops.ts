/**
 * The ops the model code runs, in one place: every model file calls ops through this module, so
 * the models depend on the op families by name only (selective scan, SSD, causal conv1d, dense
 * layers, decode state updates) and a change of an op's signature is absorbed here. Each op is
 * wrapped for profileOps (profile.ts); unprofiled, the wrapper only forwards the call.
 */
import { selectiveScan as selectiveScanOp } from '../ops/selective_scan';
import { ssdChunkScan as ssdChunkScanOp } from '../ops/ssd';
import { causalConv1d as causalConv1dOp } from '../ops/conv1d';
import { embedding as embeddingOp, linear as linearOp, linearConvUpdate as linearConvUpdateOp, linearConvUpdateProj as linearConvUpdateProjOp, rmsNorm as rmsNormOp, gatedRmsNorm as gatedRmsNormOp } from '../ops/dense';
import { selectiveStateUpdate as selectiveStateUpdateOp } from '../ops/state_update';
import { argmax as argmaxOp, sampleTokens as sampleTokensOp } from '../ops/sampling';
import { copyInto as copyIntoOp } from '../tensor';
import { timed } from './profile';

export const selectiveScan = timed('selectiveScan', selectiveScanOp);
export const ssdChunkScan = timed('ssdChunkScan', ssdChunkScanOp);
export const causalConv1d = timed('causalConv1d', causalConv1dOp);
export const embedding = timed('embedding', embeddingOp);
export const linear = timed('linear', linearOp);
export const linearConvUpdate = timed('linearConvUpdate', linearConvUpdateOp);
export const linearConvUpdateProj = timed('linearConvUpdateProj', linearConvUpdateProjOp);
export const rmsNorm = timed('rmsNorm', rmsNormOp);
export const gatedRmsNorm = timed('gatedRmsNorm', gatedRmsNormOp);
export const selectiveStateUpdate = timed('selectiveStateUpdate', selectiveStateUpdateOp);
export const copyInto = timed('copyInto', copyIntoOp);
export const argmax = timed('argmax', argmaxOp);
export const sampleTokens = timed('sampleTokens', sampleTokensOp);
