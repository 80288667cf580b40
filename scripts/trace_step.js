#!/usr/bin/env node
// Summarises a kernel timeline from scripts/kernel_trace.cpp (CSV: start_ns, end_ns, stream, grid,
// block, name) over the last complete decode step, a step starting at each embedding kernel (as
// dist/bench/decode_timeline.js replays them): the step's length, then its first LAYERS layers
// (default 3) and its last kernels as a table of start, end and duration in µs from the step's
// start, with the stream, grid and block size: which kernels overlap and where the GPU waits;
// then, per kernel of a layer (the period with which the kernel sequence repeats), the medians of
// its duration, its end and how much it adds to the layer's time.
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
// The layers: the shortest period with which the step's kernel sequence (name, grid) repeats.
const sig = step.map((r) => `${short(r.name)}/${r.grid}`);
let period = 0;
for (let q = 1; q <= 64 && !period; q++) {
  let same = 0;
  for (let i = 0; i + q < sig.length; i++) same += sig[i] === sig[i + q] ? 1 : 0;
  if (same >= 0.9 * (sig.length - q) && sig.length >= 4 * q) period = q;
}
let first = 0;
if (period) while (first + 2 * period <= sig.length && sig.slice(first, first + period).join() !== sig.slice(first + period, first + 2 * period).join()) first++;
const layers = period ? Math.floor((sig.length - first) / period) : 0;
const show = first + (period || 8) * Number(layersArg ?? 3);
console.log('| start µs | end µs | µs | stream | grid x block | kernel |\n| --- | --- | --- | --- | --- | --- |');
const line = (r) => console.log(`| ${us(r.start)} | ${us(r.end)} | ${((r.end - r.start) / 1e3).toFixed(2)} | ${r.stream} | ${r.grid} x ${r.block} | ${short(r.name)} |`);
step.slice(0, show).forEach(line);
if (step.length > show + 4) console.log('| … | | | | | |');
step.slice(Math.max(show, step.length - 4)).forEach(line);
if (layers < 6) process.exit(0);
// Per kernel of a layer, medians over the layers (the first two and the last two left out): its
// duration, when it ends after the previous layer's last kernel ends, and how far it moves the
// end of the work done so far ("adds": the layer's time is the sum of this column).
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const at = (l, j) => step[first + l * period + j];
const cols = Array.from({ length: period }, () => ({ dur: [], end: [], adds: [] }));
const lens = [];
for (let l = 2; l < layers - 2; l++) {
  const base = at(l - 1, period - 1).end;
  let frontier = Math.max(...Array.from({ length: period }, (_, j) => at(l - 1, j).end));
  const start = frontier;
  for (let j = 0; j < period; j++) {
    const r = at(l, j);
    cols[j].dur.push((r.end - r.start) / 1e3);
    cols[j].end.push((r.end - base) / 1e3);
    cols[j].adds.push(Math.max(0, r.end - frontier) / 1e3);
    frontier = Math.max(frontier, r.end);
  }
  lens.push((frontier - start) / 1e3);
}
console.log(`\n${layers} layers of ${period} kernels from kernel ${first}; a layer takes ${median(lens).toFixed(2)} µs (median over layers 2-${layers - 3})`);
console.log('| kernel | grid x block | stream | µs | ends µs after the previous layer | adds µs |\n| --- | --- | --- | --- | --- | --- |');
cols.forEach((c, j) => {
  const r = at(2, j);
  console.log(`| ${short(r.name)} | ${r.grid} x ${r.block} | ${r.stream} | ${median(c.dur).toFixed(2)} | ${median(c.end).toFixed(2)} | ${median(c.adds).toFixed(2)} |`);
});
