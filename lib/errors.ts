/**
 * Coded errors, shaped like the ones the native layer throws: a built-in TypeError / RangeError /
 * Error with a stable `code`, so callers can branch on `err.code` whichever layer caught the problem.
 */
export type ErrorCode =
  | 'ERR_SHAPE'
  | 'ERR_DTYPE'
  | 'ERR_DEVICE'
  | 'ERR_DISPOSED'
  | 'ERR_INVALID_ARG'
  | 'ERR_CUDA'
  | 'ERR_CUDA_OOM'
  | 'ERR_OOM'
  | 'ERR_FORMAT'
  | 'ERR_NUMERIC'
  | 'ERR_ADDON'
  | 'ERR_INTERNAL';

export interface StatespaceError extends Error {
  code: ErrorCode;
}

type Kind = 'type' | 'range' | 'plain';

export function makeError(kind: Kind, code: ErrorCode, message: string): StatespaceError {
  const Ctor = kind === 'type' ? TypeError : kind === 'range' ? RangeError : Error;
  const err = new Ctor(message) as StatespaceError;
  err.code = code;
  return err;
}

export const shapeError = (message: string) => makeError('range', 'ERR_SHAPE', message);
export const dtypeError = (message: string) => makeError('type', 'ERR_DTYPE', message);
export const deviceError = (message: string) => makeError('type', 'ERR_DEVICE', message);
export const argError = (message: string) => makeError('type', 'ERR_INVALID_ARG', message);
export const formatError = (message: string) => makeError('plain', 'ERR_FORMAT', message);

export function shapeStr(shape: readonly number[]): string {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
}
