#!/usr/bin/env node
/**
 * statespace command line:
 *   statespace info                       version, build, devices
 *   statespace bench <suite> [--device cpu|cuda] [--json FILE] [--quick]
 */
import { parseArgs } from 'node:util';
import { buildInfo, devices, Device } from './index';

function info(): void {
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

async function bench(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      device: { type: 'string', multiple: true },
      json: { type: 'string' },
      quick: { type: 'boolean', default: false },
    },
  });
  const { suites } = await import('../bench/index');
  const { Report } = await import('../bench/report');
  const names = positionals.length ? positionals : [];
  if (!names.length || names.some((n) => !(n in suites))) {
    console.error('usage: statespace bench <suite...> [--device cpu|cuda ...] [--json FILE] [--quick]\nsuites:');
    for (const [n, s] of Object.entries(suites)) console.error(`  ${n.padEnd(16)} ${s.describe}`);
    process.exitCode = 2;
    return;
  }
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

async function main(): Promise<void> {
  const [cmd, ...rest] = process.argv.slice(2);
  switch (cmd) {
    case 'info':
      info();
      break;
    case 'bench':
      await bench(rest);
      break;
    default: {
      const { commands } = await import('./cli_commands');
      const c = cmd ? commands[cmd] : undefined;
      if (c) {
        await c.run(rest);
        break;
      }
      console.error('usage: statespace <info|bench|' + Object.keys(commands).join('|') + '> ...');
      process.exitCode = cmd ? 2 : 0;
    }
  }
}

main().catch((err: Error & { code?: string }) => {
  console.error(`statespace: ${err.code ? `[${err.code}] ` : ''}${err.message}`);
  process.exitCode = 1;
});
