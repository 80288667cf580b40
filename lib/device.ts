import { deviceError } from './errors';

/** 'cpu', 'cuda' (device 0) or 'cuda:N'. */
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

/** Canonical form: 'cpu' or 'cuda:N'. */
export function normalizeDevice(d: unknown, name = 'device'): Device {
  if (d === undefined || d === 'cpu') return 'cpu';
  if (d === 'cuda') return 'cuda:0';
  if (typeof d === 'string' && /^cuda:\d+$/.test(d)) return d as Device;
  throw deviceError(`${name}: expected 'cpu', 'cuda' or 'cuda:N', got ${JSON.stringify(d)}`);
}
