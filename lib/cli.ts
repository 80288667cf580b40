#!/usr/bin/env node
/**
 * statespace command line: `statespace --help` lists the commands, `statespace <command> --help`
 * their options.
 *   statespace info                       version, build, devices
 *   statespace bench <suite...> [--device cpu|cuda] [--json FILE] [--quick]
 *   statespace generate | serve           lib/cli_commands.ts
 */
import { Command, commands } from './cli_commands';
import { CliSpec, parseCli, usageError } from './cli_usage';
import { buildInfo, devices, Device } from './index';

const infoSpec: CliSpec = {
  name: 'info',
  synopsis: '',
  summary: "Prints the version, the build (CUDA targets, or why CUDA is unavailable) and the devices.",
  options: {},
};

function info(args: string[]): void {
  if (!parseCli(infoSpec, args)) return;
  const b = buildInfo();
  console.log(`statespace ${b.version}`);
  console.log(`  node          ${process.version} (${process.platform}-${process.arch})`);
  console.log(`  CPU           ${b.cpuThreads} threads, ${b.cpuIsa} kernels`);
  if (b.cuda) {
    const v = (n: number) => `${Math.floor(n / 1000)}.${(n % 1000) / 10}`;
    console.log(`  CUDA          compiled for ${b.cudaArchs} (runtime ${v(b.cudaRuntime)}, static)`);
    console.log(`  CUDA driver   ${b.cudaDriver ? v(b.cudaDriver) : 'none'}`);
    if (b.cudaUnavailable) console.log(`  CUDA status   unavailable: ${b.cudaUnavailable}`);
  } else {
    console.log(`  CUDA          not compiled in (${b.cudaUnavailable})`);
  }
  console.log('devices:');
  for (const d of devices()) {
    if (d.device === 'cpu') {
      console.log(`  cpu       ${d.threads} threads`);
    } else {
      const gib = (n = 0) => (n / 2 ** 30).toFixed(1);
      console.log(
        `  ${d.device.padEnd(9)} ${d.name}, compute ${d.computeCapability}, ${d.multiprocessors} SMs, ` +
          `${gib(d.totalMemory)} GiB (${gib(d.freeMemory)} free), peak ${((d.peakBandwidth ?? 0) / 1e12).toFixed(2)} TB/s`,
      );
    }
  }
}

const benchSpec: CliSpec = {
  name: 'bench',
  synopsis: '<suite...> [options]',
  summary: 'Runs benchmark suites and prints their tables, with the measured copy bandwidth as the ceiling.',
  options: {
    device: { type: 'string', multiple: true, arg: 'cpu|cuda|cuda:N', help: 'a device to run on, repeatable (default: cuda:0 and cpu with a GPU, else cpu)' },
    json: { type: 'string', arg: 'FILE', help: 'also write the results as JSON' },
    quick: { type: 'boolean', help: 'smaller sizes, for a quick look' },
  },
};

async function bench(args: string[]): Promise<void> {
  const { suites } = await import('../bench/index');
  const spec = { ...benchSpec, more: ['suites:', ...Object.entries(suites).map(([n, s]) => `  ${n.padEnd(16)} ${s.describe}`)].join('\n') };
  const parsed = parseCli(spec, args);
  if (!parsed) return;
  const values = parsed.values as { device?: string[]; json?: string; quick?: boolean };
  const names = parsed.positionals;
  const unknown = names.filter((n) => !(n in suites));
  if (!names.length || unknown.length) return usageError(spec, names.length ? `unknown suite ${unknown.join(', ')}` : 'name one suite or more');
  const { Report } = await import('../bench/report');
  const gpu = buildInfo().cudaDevices > 0;
  const devs = (values.device ?? (gpu ? ['cuda:0', 'cpu'] : ['cpu'])).map((d) => (d === 'cuda' ? 'cuda:0' : d)) as Device[];
  for (const name of names) {
    const report = new Report(name);
    console.error(`statespace bench ${name} on ${devs.join(', ')} ...`);
    await suites[name].run(devs, report, { quick: values.quick ?? false });
    report.print(`${name} (${devices().find((d) => d.device === devs[0])?.name ?? devs[0]})`);
    if (values.json) report.writeJson(values.json, { devices: devices(), build: buildInfo(), date: new Date().toISOString() });
  }
}

const builtins: Record<string, Command> = {
  info: { spec: infoSpec, run: async (args) => info(args) },
  bench: { spec: benchSpec, run: bench },
};

function help(): string {
  const all = { ...builtins, ...commands };
  return [
    'usage: statespace <command> [options]      statespace <command> --help',
    '',
    'commands:',
    ...Object.entries(all).map(([n, c]) => `  ${n.padEnd(10)} ${c.spec.summary}`),
    '',
    'options: -h, --help (this list), -v, --version',
  ].join('\n');
}

async function main(): Promise<void> {
  const [cmd, ...rest] = process.argv.slice(2);
  const c = cmd === undefined ? undefined : (builtins[cmd] ?? commands[cmd]);
  if (c) return c.run(rest);
  if (cmd === '-v' || cmd === '--version') {
    console.log(buildInfo().version);
  } else if (cmd === undefined || cmd === '-h' || cmd === '--help' || cmd === 'help') {
    const sub = cmd === 'help' && rest[0] ? (builtins[rest[0]] ?? commands[rest[0]]) : undefined;
    if (sub) return sub.run(['--help']);
    console.log(help());
  } else {
    console.error(`statespace: unknown command ${JSON.stringify(cmd)}\n\n${help()}`);
    process.exitCode = 2;
  }
}

main().catch((err: Error & { code?: string }) => {
  console.error(`statespace: ${err.code ? `[${err.code}] ` : ''}${err.message}`);
  process.exitCode = 1;
});
