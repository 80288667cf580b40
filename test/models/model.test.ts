/** The model tests on the library's own ops (CPU, float32) against the float64 reference. */
import { defineModelTests } from './model_suite';
import { opsMissingReason, opsReady } from './ops_ready';

if (!opsReady) console.log(`[test/models/model] skipped: ${opsMissingReason}`);
defineModelTests('models on the CPU ops against the float64 reference', opsReady);
