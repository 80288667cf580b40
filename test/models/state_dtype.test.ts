/**
 * The bfloat16 SSM state cache (LoadOptions.stateDtype): decode steps, and prompts prefilled in
 * pieces that continue from the cached state, stay close to the float32-state model.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel } from '../../lib/models/load';
import { expectCode, relErr } from '../helpers';
import { writeTinyCheckpoint } from './tiny_checkpoint';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ss-state-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('bfloat16 SSM state cache', () => {
  for (const architecture of ['mamba', 'mamba2'] as const) {
    it(`${architecture}: decode steps and chunked prefill stay within bf16 rounding of the f32 state`, async () => {
      const ck = writeTinyCheckpoint(path.join(tmp, architecture), { architecture });
      const V = ck.config.vocabSize;
      const f32 = await loadModel(ck.dir, { device: 'cpu', dtype: 'float32', maxBatch: 3 });
      const bf16 = await loadModel(ck.dir, { device: 'cpu', dtype: 'float32', maxBatch: 3, stateDtype: 'bfloat16', prefillChunk: 3 });
      expect(bf16.stateDtype).toBe('bfloat16');
      const prompt = Int32Array.from({ length: 8 }, () => Math.floor(Math.random() * V));
      const a0 = (await f32.prefill(prompt, 1)) as Float32Array;
      const b0 = (await bf16.prefill(prompt, 1)) as Float32Array; // three pieces through the bf16 cache
      expect(relErr(b0, a0)).toBeLessThan(2e-2);
      // slot 0 gets a copy of slot 1 so the step covers two rows
      f32.moveSlot(1, 0);
      bf16.moveSlot(1, 0);
      let tokens = Int32Array.of(3, 5);
      for (let s = 0; s < 6; s++) {
        const a = await f32.step(tokens);
        if (s % 2 === 0) {
          const b = await bf16.step(tokens);
          for (let i = 0; i < 2; i++) expect(relErr(b[i], a[i]), `step ${s} row ${i}`).toBeLessThan(3e-2);
        } else {
          await bf16.stepGreedy(tokens); // the same step, tokens chosen on the device
        }
        tokens = Int32Array.from(a, (row) => row.indexOf(Math.max(...row)));
      }
      f32.dispose();
      bf16.dispose();
    });
  }

  it('rejects other state dtypes', async () => {
    const ck = writeTinyCheckpoint(path.join(tmp, 'bad'), { architecture: 'mamba' });
    let err: unknown;
    try {
      await loadModel(ck.dir, { device: 'cpu', dtype: 'float32', stateDtype: 'float16' });
    } catch (e) {
      err = e;
    }
    expectCode(() => {
      throw err;
    }, 'ERR_DTYPE', 'stateDtype');
  });
});
