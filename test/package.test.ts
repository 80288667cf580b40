import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..');
const node = (args: string[]) => execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8' });

describe('package entry points and CLI', () => {
  it('loads through CommonJS and ESM with the same exports', () => {
    const cjs = node(['-e', "const s=require('statespace'); console.log(Object.keys(s).sort().join(','))"]).trim();
    const esm = node(['--input-type=module', '-e', "import * as s from 'statespace'; console.log(Object.keys(s).filter(k=>k!=='default').sort().join(','))"]).trim();
    expect(cjs.split(',')).toContain('tensor');
    expect(esm).toBe(cjs);
  });

  it('statespace info prints the version, build and devices', () => {
    const out = node(['dist/lib/cli.js', 'info']);
    expect(out).toMatch(/^statespace \d+\.\d+\.\d+/);
    expect(out).toMatch(/CUDA/);
    expect(out).toMatch(/cpu\s+\d+ threads/);
  });

  it('statespace bench copy reports a bandwidth and writes JSON', () => {
    const file = path.join(require('node:os').tmpdir(), `ss-bench-${process.pid}.json`);
    const out = node(['dist/lib/cli.js', 'bench', 'copy', '--device', 'cpu', '--json', file]);
    expect(out).toMatch(/GB\/s/);
    const doc = JSON.parse(require('node:fs').readFileSync(file, 'utf8'));
    expect(doc.copy.rows.length).toBeGreaterThan(0);
    expect(doc.copy.rows[0]['GB/s (read+write)']).toBeGreaterThan(0.1);
  });
});
