/** Checkpoints made by transformers (test/fixtures): the float64 reference, then the models on the CPU. */
import { defineFixtureTests, defineReferenceFixtureTests } from './fixture_suite';

defineReferenceFixtureTests();
defineFixtureTests('transformers fixtures on the CPU (f32)');
