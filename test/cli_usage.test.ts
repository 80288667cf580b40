/** lib/cli_usage.ts: one option table gives parsing, --help and usage errors. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { commands } from '../lib/cli_commands';
import { CliSpec, parseCli, usageText } from '../lib/cli_usage';

const spec: CliSpec = {
  name: 'demo',
  synopsis: '<file> [options]',
  summary: 'A command for the test.',
  options: {
    count: { type: 'string', arg: 'N', default: '3', help: 'how many' },
    device: { type: 'string', multiple: true, arg: 'D', help: 'repeatable' },
    quiet: { type: 'boolean', short: 'q', help: 'say less' },
  },
  more: 'example: statespace demo a.txt',
};

function spied() {
  const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
  const err = vi.spyOn(console, 'error').mockImplementation(() => undefined);
  const text = (s: typeof log) => s.mock.calls.map((c) => c.join(' ')).join('\n');
  return { out: () => text(log), err: () => text(err) };
}

afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = 0;
});

describe('parseCli', () => {
  it('parses options, defaults, repeats and positionals', () => {
    const got = parseCli(spec, ['a.txt', '--device', 'cpu', '-q', '--device', 'cuda']);
    expect(got?.positionals).toEqual(['a.txt']);
    expect(got?.values).toMatchObject({ count: '3', device: ['cpu', 'cuda'], quiet: true });
  });

  it('prints every option, its value, default and help for --help / -h, and stops', () => {
    for (const flag of ['--help', '-h']) {
      const io = spied();
      expect(parseCli(spec, ['a.txt', flag])).toBeUndefined();
      const out = io.out();
      expect(out).toMatch(/^usage: statespace demo <file> \[options\]/);
      expect(out).toContain('A command for the test.');
      expect(out).toMatch(/--count N\s+how many \(default 3\)/);
      expect(out).toMatch(/--device D\s+repeatable/);
      expect(out).toMatch(/-q, --quiet\s+say less/);
      expect(out).toMatch(/-h, --help\s+print this help/);
      expect(out).toContain('example: statespace demo a.txt');
      expect(io.err()).toBe('');
      expect(process.exitCode ?? 0).toBe(0);
      vi.restoreAllMocks();
    }
  });

  it('reports an unknown option or a missing value with the command and exit status 2', () => {
    for (const args of [['a.txt', '--bogus'], ['a.txt', '--count']]) {
      const io = spied();
      expect(parseCli(spec, args)).toBeUndefined();
      expect(io.err()).toMatch(/^statespace demo: .*(--bogus|--count)/);
      expect(io.err()).toContain('see: statespace demo --help');
      expect(process.exitCode).toBe(2);
      process.exitCode = 0;
      vi.restoreAllMocks();
    }
  });

  it('prints the usage to stderr when a command that needs arguments gets none', () => {
    const io = spied();
    expect(parseCli(spec, [])).toBeUndefined();
    expect(io.err()).toBe(usageText(spec));
    expect(process.exitCode).toBe(2);
  });

  it("documents every option of the registered commands", () => {
    for (const c of Object.values(commands)) {
      const text = usageText(c.spec);
      for (const name of Object.keys(c.spec.options)) expect(text).toContain(`--${name}`);
      expect(text).toContain(`usage: statespace ${c.spec.name}`);
    }
  });
});
