/**
 * The same model tests with every op replaced by the float64 loops of js_ops.ts: checks the
 * model plumbing (weight layout, slicing and transposes, residual stream, recurrent state slots,
 * scheduling) independently of the op families.
 */
import { vi } from 'vitest';
import { defineModelTests } from './model_suite';

vi.mock('../../lib/models/ops', () => import('./js_ops'));
defineModelTests('models on float64 JS ops against the float64 reference', true);
