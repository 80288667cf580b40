/**
 * The ops the model code runs, in one place: every model file calls ops through this module, so
 * the models depend on the op families by name only (selective scan, SSD, causal conv1d, dense
 * layers, decode state updates) and a change of an op's signature is absorbed here.
 */
export { selectiveScan } from '../ops/selective_scan';
export { ssdChunkScan } from '../ops/ssd';
export { causalConv1d, causalConv1dUpdate } from '../ops/conv1d';
export { embedding, linear, rmsNorm, gatedRmsNorm } from '../ops/dense';
export { selectiveStateUpdate } from '../ops/state_update';
export { copyInto } from '../ops/copy_into';
