import { beforeAll, describe, it } from 'vitest';
import { debugPoison } from '../lib/index';
import { BIG_POOL, HEADDIM64_POOL, checkConvPool, checkStatePool } from './state_pool_checks';

beforeAll(() => debugPoison(true));

describe('decode on a state pool (CPU)', () => {
  it('selectiveStateUpdate with stateIndices: Mamba-1 and Mamba-2 forms', async () => {
    await checkStatePool('cpu', true);
    await checkStatePool('cpu', false);
    await checkStatePool('cpu', true, BIG_POOL);
    await checkStatePool('cpu', false, HEADDIM64_POOL);
  });
  it('causalConv1dUpdate with convStateIndices', async () => {
    await checkConvPool('cpu');
  });
});
