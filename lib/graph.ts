/**
 * CUDA graphs: record the kernels a function enqueues on a device's stream once, then replay them
 * with a single launch. A decode step of a model is hundreds of small kernels; replaying it as a
 * graph removes the per-op dispatch cost from the host.
 *
 * Rules while capturing (checked where it can be):
 * - `fn` is synchronous and only enqueues GPU work: no reads (`data()`), no host→GPU copies.
 * - Results go into tensors that existed before the capture (e.g. `copyInto(out, y)`); every
 *   tensor created inside is disposed inside (`tidy`). Capture fails otherwise.
 * - Run `fn` once before capturing, so one-time setup (library handles, workspaces) is done.
 * - A replay reads the *current* contents of the tensors it captured: update inputs in place
 *   (`copyInto`) between replays.
 */
import { Device, normalizeDevice } from './device';
import { makeError } from './errors';
import { native } from './native';
import { tidy } from './tensor';
import { synchronizeSync } from './runtime';

interface GraphNative {
  graphBegin(device: string): void;
  graphEnd(device: string, discard: boolean): object | undefined;
  graphReplay(g: object): void;
  graphDestroy(g: object): void;
}
const nat = native as unknown as Partial<GraphNative>;

export class CudaGraph {
  private handle: object | null;
  /** @internal */
  constructor(handle: object, readonly device: Device) {
    this.handle = handle;
  }
  /** Enqueues the captured work once more on the device's stream. */
  replay(): void {
    if (!this.handle) throw makeError('plain', 'ERR_DISPOSED', 'CudaGraph: the graph has been disposed');
    (nat as GraphNative).graphReplay(this.handle);
  }
  dispose(): void {
    if (this.handle) (nat as GraphNative).graphDestroy(this.handle);
    this.handle = null;
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Captures the GPU work `fn` enqueues on `device` into a replayable graph. */
export function captureGraph(device: Device, fn: () => void): CudaGraph {
  const d = normalizeDevice(device);
  if (d === 'cpu' || !nat.graphBegin) throw makeError('type', 'ERR_DEVICE', `captureGraph: needs a CUDA device, got ${d}`);
  // no queued host work may touch the stream while it is being captured
  synchronizeSync('cpu');
  synchronizeSync(d);
  nat.graphBegin(d);
  try {
    const r = tidy(fn) as unknown;
    if (r instanceof Promise) throw makeError('type', 'ERR_INVALID_ARG', 'captureGraph: fn must be synchronous');
  } catch (err) {
    nat.graphEnd!(d, true);
    throw err;
  }
  return new CudaGraph(nat.graphEnd!(d, false) as object, d);
}
