import { execFileSync, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..');
const node = (args: string[]) => execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8' });
const cli = (args: string[]) => spawnSync(process.execPath, ['dist/lib/cli.js', ...args], { cwd: root, encoding: 'utf8' });

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

  it('statespace --help lists every command; <command> --help its options; a bad command or option exits 2', () => {
    for (const args of [[], ['--help'], ['-h']]) {
      const r = cli(args);
      expect(r.status).toBe(0);
      for (const c of ['info', 'bench', 'generate', 'serve']) expect(r.stdout).toMatch(new RegExp(`^  ${c} `, 'm'));
    }
    const version = cli(['--version']);
    expect(version.status).toBe(0);
    expect(version.stdout.trim()).toBe(JSON.parse(require('node:fs').readFileSync(path.join(root, 'package.json'), 'utf8')).version);
    const bench = cli(['bench', '--help']);
    expect(bench.status).toBe(0);
    expect(bench.stdout).toMatch(/--device cpu\|cuda/);
    expect(bench.stdout).toMatch(/^  generate +Mamba/m);
    const serve = cli(['help', 'serve']);
    expect(serve.status).toBe(0);
    expect(serve.stdout).toMatch(/--port N .*\(default 8000\)/);
    const unknown = cli(['nope']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain('unknown command "nope"');
    const badOption = cli(['generate', 'dir', '--prompt', 'x', '--bogus']);
    expect(badOption.status).toBe(2);
    expect(badOption.stderr).toMatch(/statespace generate: .*--bogus[^]*see: statespace generate --help/);
    const badSuite = cli(['bench', 'nope']);
    expect(badSuite.status).toBe(2);
    expect(badSuite.stderr).toContain('unknown suite nope');
  });
});
