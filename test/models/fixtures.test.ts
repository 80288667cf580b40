/** Checkpoints made by transformers (test/fixtures): the reference, then the models on the library's ops. */
import { defineFixtureTests, defineReferenceFixtureTests } from './fixture_suite';
import { opsMissingReason, opsReady } from './ops_ready';

defineReferenceFixtureTests();
if (!opsReady) console.log(`[test/models/fixtures] model checks skipped: ${opsMissingReason}`);
defineFixtureTests('transformers fixtures on the CPU ops (f32)', opsReady);
