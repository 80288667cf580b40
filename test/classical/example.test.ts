// Runs examples/kalman_spring.mjs as a user would (through the built package, dist/) and
// checks that its estimates beat the raw sensor.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..', '..');

describe('examples/kalman_spring.mjs', () => {
  it('tracks position and the unobserved velocity of a mass–spring–damper', () => {
    expect(fs.existsSync(path.join(root, 'dist', 'lib', 'index.mjs')), 'dist/ is missing: run `npm run build:ts` first').toBe(true);
    const out = execFileSync(process.execPath, [path.join(root, 'examples', 'kalman_spring.mjs'), '--json'], { cwd: root, encoding: 'utf8' });
    const r = JSON.parse(out.trim().split('\n').pop() as string);
    const e = r.rmse;
    expect(e.measuredPosition).toBeGreaterThan(0.04); // the sensor noise is σ = 0.05
    expect(e.filteredPosition).toBeLessThan(0.6 * e.measuredPosition);
    expect(e.smoothedPosition).toBeLessThan(e.filteredPosition);
    expect(e.filteredVelocity).toBeLessThan(0.2 * r.velocityStd);
    expect(e.smoothedVelocity).toBeLessThan(e.filteredVelocity);
    expect(Number.isFinite(r.logLik)).toBe(true);
  });
});
