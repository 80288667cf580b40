/**
 * Argument parsing shared by the statespace commands. Each command declares its options once, each
 * with a line of help, and from that one table gets `-h` / `--help` (the usage on stdout) and usage
 * errors that name the command and its help (on stderr, exit status 2), instead of Node's bare
 * parseArgs exception.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export interface CliOption {
  type: 'string' | 'boolean';
  multiple?: boolean;
  default?: string | boolean;
  short?: string;
  /** How a string option's value is shown in the usage, e.g. "N" or "cpu|cuda". */
  arg?: string;
  /** One line for the usage. */
  help: string;
}

export interface CliSpec {
  /** The command name, as typed after `statespace`. */
  name: string;
  /**
   * What follows the name on the usage line, e.g. "<checkpoint dir> --prompt TEXT [options]"; one
   * that starts with "<" names a required argument, so the command run bare prints its usage.
   */
  synopsis: string;
  /** One line: what the command does (the command list of `statespace --help` shows it too). */
  summary: string;
  options: Record<string, CliOption>;
  /** Lines printed after the options (value lists, examples). */
  more?: string;
}

export type CliValues = Record<string, string | boolean | string[] | undefined>;

export interface CliArgs {
  values: CliValues;
  positionals: string[];
}

const helpOption: CliOption = { type: 'boolean', short: 'h', help: 'print this help' };

export function usageText(spec: CliSpec): string {
  const opts = Object.entries({ ...spec.options, help: helpOption });
  const left = opts.map(([name, o]) => `${o.short ? `-${o.short}, ` : ''}--${name}${o.type === 'string' ? ` ${o.arg ?? 'VALUE'}` : ''}`);
  const width = Math.max(...left.map((s) => s.length)) + 2;
  const lines = opts.map(([, o], i) => {
    const dflt = o.default !== undefined && o.type === 'string' ? ` (default ${o.default})` : '';
    return `  ${left[i].padEnd(width)}${o.help}${dflt}`;
  });
  return [`usage: statespace ${spec.name} ${spec.synopsis}`.trimEnd(), '', spec.summary, '', 'options:', ...lines, ...(spec.more ? ['', spec.more] : [])].join('\n');
}

/** Reports a usage error for the command (stderr, exit status 2). */
export function usageError(spec: CliSpec, message: string): void {
  console.error(`statespace ${spec.name}: ${message}\nsee: statespace ${spec.name} --help`);
  process.exitCode = 2;
}

/**
 * Parses a command's arguments. Returns undefined when the command should stop: after `--help`
 * (usage on stdout, exit status 0), after a usage error (reported, exit status 2), or when a command
 * that needs arguments has none (usage on stderr, exit status 2).
 */
export function parseCli(spec: CliSpec, args: string[]): CliArgs | undefined {
  if (!args.length && spec.synopsis.startsWith('<')) {
    console.error(usageText(spec));
    process.exitCode = 2;
    return undefined;
  }
  const options: ParseArgsConfig['options'] = {};
  for (const [name, o] of Object.entries({ ...spec.options, help: helpOption })) {
    // (parseArgs rejects keys that are present but undefined)
    options[name] = {
      type: o.type,
      ...(o.multiple ? { multiple: true } : {}),
      ...(o.short ? { short: o.short } : {}),
      ...(o.default !== undefined ? { default: o.default } : {}),
    };
  }
  let parsed: CliArgs;
  try {
    parsed = parseArgs({ args, allowPositionals: true, options }) as CliArgs;
  } catch (e) {
    usageError(spec, (e as Error).message);
    return undefined;
  }
  if (parsed.values.help) {
    console.log(usageText(spec));
    return undefined;
  }
  return parsed;
}
