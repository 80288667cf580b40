/** The transformers fixtures with every op replaced by float64 JS loops (model plumbing only). */
import { vi } from 'vitest';
import { defineFixtureTests } from './fixture_suite';

vi.mock('../../lib/models/ops', () => import('./js_ops'));
defineFixtureTests('transformers fixtures on float64 JS ops', true);
