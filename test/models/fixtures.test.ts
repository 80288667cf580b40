/** Checkpoints made by transformers (test/fixtures): the float64 reference, then the models on the CPU. */
import { defineFixtureTests, defineReferenceFixtureTests } from './fixture_suite';

defineReferenceFixtureTests();
defineFixtureTests('transformers fixtures on the CPU (f32)');
defineFixtureTests('transformers fixtures on the CPU (bf16)', { device: 'cpu', dtype: 'bfloat16' }, 2e-2);
