/**
 * The classical and structured SSM toolkit, exported from the package root as `classical`:
 *
 *   import { classical, tensor } from 'statespace';
 *   const { A, B } = classical.hippo('legs', 16);
 *
 * Conventions: every function takes and returns CPU Tensors (float32 or float64; all inputs of
 * one call share the dtype) and returns at once; the work runs on the CPU thread pool off the
 * JS thread, and `await t.data()` reads a result. Scalars such as the Kalman log-likelihood are
 * Tensors of shape () (or (batch)). Complex values are interleaved: a trailing dimension of 2
 * holding (re, im), e.g. n complex modes are a (n, 2) tensor. Bad input throws a coded error
 * (ERR_SHAPE, ERR_DTYPE, ERR_DEVICE, ERR_INVALID_ARG); a numerical failure (a singular matrix,
 * a non-positive-definite innovation covariance) rejects the read with ERR_NUMERIC.
 */
export { discretize } from './discretize';
export type { DiscretizeMethod, DiscretizeOptions, DiscreteSystem } from './discretize';
export { hippo, nplr, s4dInit } from './hippo';
export type { HippoKind, S4dInitKind, InitOptions } from './hippo';
export { simulate, kernel, convolve } from './lti';
export type { SimulateOptions } from './lti';
export { s4dKernel, s4Kernel } from './s4';
export type { S4dKernelOptions, S4KernelOptions } from './s4';
export * as kalman from './kalman';
export type { KalmanOptions, KalmanResult } from './kalman';
