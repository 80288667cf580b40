/**
 * statespace: state space model kernels for Node.js.
 * Everything public is exported from here (ESM and CommonJS).
 */
export { Tensor, tensor, zeros, ones, full, empty, randn, rand, tidy, contiguousStrides } from './tensor';
export type { CreateOptions, RandomOptions } from './tensor';
export type { DType, TensorData } from './dtype';
export { DTYPES, dtypeSize } from './dtype';
export type { Device } from './device';
export { buildInfo, devices, cudaAvailable, memory, emptyCache, synchronize, synchronizeSync, debugPoison } from './runtime';
export type { BuildInfo, DeviceInfo, MemoryInfo } from './runtime';
export type { ErrorCode, StatespaceError } from './errors';
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
