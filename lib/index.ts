/**
 * statespace: state space model kernels for Node.js.
 * Everything public is exported from here (ESM and CommonJS).
 */
export { Tensor, tensor, zeros, ones, full, empty, randn, rand, tidy, copyInto, contiguousStrides } from './tensor';
export type { CreateOptions, RandomOptions } from './tensor';
export type { DType, TensorData } from './dtype';
export { DTYPES, dtypeSize } from './dtype';
export type { Device } from './device';
export { buildInfo, devices, cudaAvailable, memory, emptyCache, synchronize, synchronizeSync, debugPoison } from './runtime';
export type { BuildInfo, DeviceInfo, MemoryInfo } from './runtime';
export type { ErrorCode, StatespaceError } from './errors';
export { captureGraph, CudaGraph } from './graph';
export { selectiveScan, selectiveScanBackward } from './ops/selective_scan';
export type {
  SelectiveScanOptions,
  SelectiveScanForwardOptions,
  SelectiveScanResult,
  SelectiveScanBackwardOptions,
  SelectiveScanGradients,
} from './ops/selective_scan';
export { ssdChunkScan, ssdChunkScanBackward } from './ops/ssd';
export type { SsdChunkScanOptions, SsdChunkScanResult, SsdChunkScanBackwardOptions, SsdChunkScanGradients } from './ops/ssd';
export * as classical from './classical/index';
export { causalConv1d, causalConv1dBackward, causalConv1dUpdate } from './ops/conv1d';
export type { CausalConv1dOptions, CausalConv1dResult, CausalConv1dBackwardOptions, CausalConv1dGrads, CausalConv1dUpdateOptions } from './ops/conv1d';
export { embedding, linear, linearConvUpdate, linearConvUpdateProj, linearBackend, rmsNorm, gatedRmsNorm, silu, softplus, add, mul } from './ops/dense';
export type { EmbeddingOptions, LinearOptions, LinearConvUpdateOptions, LinearConvUpdateProjOptions, RmsNormOptions, RmsNormResult, GatedRmsNormOptions } from './ops/dense';
export { selectiveStateUpdate } from './ops/state_update';
export type { SelectiveStateUpdateOptions } from './ops/state_update';
export { argmax, sampleTokens } from './ops/sampling';
export type { SampleTokensOptions } from './ops/sampling';
export * from './models/index';
