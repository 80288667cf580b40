import { beforeAll, it } from 'vitest';
import { debugPoison } from '../../lib/index';
import { describeGpu } from '../helpers';
import { BIG_POOL, HEADDIM64_POOL, checkConvPool, checkStatePool } from '../state_pool_checks';

describeGpu('decode on a state pool (CUDA)', () => {
  beforeAll(() => debugPoison(true));
  it('selectiveStateUpdate with stateIndices: Mamba-1 and Mamba-2 forms', async () => {
    await checkStatePool('cuda', true);
    await checkStatePool('cuda', false);
  });
  it('selectiveStateUpdate with stateIndices at batch 20 (the batched Mamba-1 kernel)', async () => {
    await checkStatePool('cuda', true, BIG_POOL);
    await checkStatePool('cuda', false, BIG_POOL);
  });
  it('selectiveStateUpdate with stateIndices, Mamba-2 rows of headdim 64', async () => {
    await checkStatePool('cuda', false, HEADDIM64_POOL);
  });
  it('causalConv1dUpdate with convStateIndices', async () => {
    await checkConvPool('cuda');
  });
});
