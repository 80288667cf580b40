/**
 * The model code runs on ops from other op families (selective scan, SSD, causal conv1d, dense,
 * decode state updates). Until those are in this checkout, model tests skip with this reason.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..');
const needed = ['selective_scan', 'ssd', 'conv1d', 'dense', 'state_update'].map((f) => `lib/ops/${f}.ts`);
const missing = needed.filter((f) => !fs.existsSync(path.join(root, f)));

export const opsReady = missing.length === 0;
export const opsMissingReason = `model tests need ${missing.join(', ')} (merged from the op branches)`;
