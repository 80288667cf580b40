#!/usr/bin/env node
// Summarises a kernel timeline from scripts/kernel_trace.cpp (CSV: start_ns, end_ns, stream, grid,
// block, name) over the last complete decode step, a step starting at each embedding kernel (as
// dist/bench/decode_timeline.js replays them): the step's length, then its first LAYERS layers
// (default 3) and its last kernels as a table of start, end and duration in µs from the step's
// start, with the stream, grid and block size: which kernels overlap and where the GPU waits.
// Usage: node scripts/trace_step.js k.csv [LAYERS]
'use strict';
const fs = require('node:fs');

const [file, layersArg] = process.argv.slice(2);
if (!file) throw new Error('usage: node scripts/trace_step.js k.csv [LAYERS]');
const rows = fs
  .readFileSync(file, 'utf8')
  .split(/\r?\n/)
  .slice(1)
  .filter((l) => l.trim())
  .map((l) => {
    const m = /^(\d+),(\d+),(\d+),(\d+),(\d+),"(.*)"$/.exec(l);
    if (!m) throw new Error(`not a kernel_trace.cpp row: ${l.slice(0, 80)}`);
    return { start: Number(m[1]), end: Number(m[2]), stream: m[3], grid: m[4], block: m[5], name: m[6] };
  })
  .sort((a, b) => a.start - b.start);
const steps = rows.flatMap((r, i) => (/embedding/.test(r.name) ? [i] : []));
if (steps.length < 2) throw new Error('fewer than two embedding kernels: no complete step in the trace');
const step = rows.slice(steps[steps.length - 2], steps[steps.length - 1]);
const t0 = step[0].start;
const us = (ns) => ((ns - t0) / 1e3).toFixed(2);
// The kernel's own name: the last identifier before its template or parameter list.
const short = (n) => (/(\w+?)(?:I\w*)?E?v?(?:NS_|P|$)/.exec(n.replace(/^_ZN2ss\d+_GLOBAL__N__\w+?_\d+_\w+?_cu_\w{8}\d+/, ''))?.[1] ?? n).slice(0, 40);
const lengths = steps.slice(0, -1).map((s, i) => {
  const k = rows.slice(s, steps[i + 1]);
  return (Math.max(...k.map((r) => r.end)) - k[0].start) / 1e3;
});
console.log(`${lengths.length} complete steps; the last ${Math.min(5, lengths.length)}: ${lengths.slice(-5).map((v) => v.toFixed(1)).join(', ')} µs`);
console.log(`the last complete step: ${step.length} kernels`);
const perLayer = Math.max(1, Math.round((step.length - 4) / 64));
const show = 2 + perLayer * Number(layersArg ?? 3);
console.log('| start µs | end µs | µs | stream | grid x block | kernel |\n| --- | --- | --- | --- | --- | --- |');
const line = (r) => console.log(`| ${us(r.start)} | ${us(r.end)} | ${((r.end - r.start) / 1e3).toFixed(2)} | ${r.stream} | ${r.grid} x ${r.block} | ${short(r.name)} |`);
step.slice(0, show).forEach(line);
if (step.length > show + 4) console.log('| … | | | | | |');
step.slice(Math.max(show, step.length - 4)).forEach(line);
