/**
 * Long-lived tensors (a model's parameters, its state cache) must not join a caller's tidy()
 * scope, which would dispose them when it ends. `untracked(fn)` runs fn in the async context of
 * this module's loading, where no tidy() scope is active; work fn starts (promises, timers)
 * stays in that context.
 */
import { AsyncResource } from 'node:async_hooks';

const root = new AsyncResource('statespace.models');

export function untracked<T>(fn: () => T): T {
  return root.runInAsyncScope(fn);
}
