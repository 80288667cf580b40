#!/usr/bin/env node
// Summarises an ncu --csv run over the kernels of one decode step (e.g. dist/bench/decode_timeline.js
// under `ncu --csv --metrics gpu__time_duration.sum,dram__bytes_read.sum -k regex:... --launch-count N`):
// per kernel name and grid size, the count, the summed and mean duration and the DRAM bytes read,
// then the step's summed kernel time (kernels run one at a time under ncu: no overlap, no gaps).
// Usage: node scripts/ncu_step.js ncu.csv [--last-step]
// --last-step: only the kernels from the last embedding kernel on (the last replayed step when the
// run profiled the model's setup, the eager step and some replays).
'use strict';
const fs = require('node:fs');

function parseLine(line) {
  const cells = [];
  let cur = '', q = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (q) {
      if (ch === '"' && line[i + 1] === '"') (cur += '"'), i++;
      else if (ch === '"') q = false;
      else cur += ch;
    } else if (ch === '"') q = true;
    else if (ch === ',') cells.push(cur), (cur = '');
    else cur += ch;
  }
  cells.push(cur);
  return cells;
}

const lines = fs.readFileSync(process.argv[2], 'utf8').split(/\r?\n/);
const h = lines.findIndex((l) => l.startsWith('"ID"'));
if (h < 0) throw new Error('no ncu CSV header ("ID",...) found');
const cols = parseLine(lines[h]);
const at = (name) => cols.indexOf(name);
const [cId, cName, cGrid, cMetric, cUnit, cValue] = ['ID', 'Kernel Name', 'Grid Size', 'Metric Name', 'Metric Unit', 'Metric Value'].map(at);
let kernels = new Map();
for (const line of lines.slice(h + 1)) {
  if (!line.trim()) continue;
  const r = parseLine(line);
  const k = kernels.get(r[cId]) ?? { name: r[cName], grid: r[cGrid], us: 0, mb: 0 };
  const v = Number(String(r[cValue]).replace(/,/g, ''));
  const unit = r[cUnit];
  if (r[cMetric] === 'gpu__time_duration.sum') k.us = unit === 'ns' ? v / 1e3 : unit === 'ms' ? v * 1e3 : v;
  if (r[cMetric] === 'dram__bytes_read.sum') k.mb = unit === 'Kbyte' ? v / 1e3 : unit === 'Gbyte' ? v * 1e3 : unit === 'byte' ? v / 1e6 : v;
  kernels.set(r[cId], k);
}
if (process.argv.includes('--last-step')) {
  const all = [...kernels];
  const from = all.map(([, k]) => /embedding/.test(k.name)).lastIndexOf(true);
  kernels = new Map(all.slice(Math.max(0, from)));
}
const short = (n) => (/(\w+)\s*[<(]/.exec(n) ?? [n, n])[1].slice(0, 40);
const by = new Map();
let total = 0;
for (const k of kernels.values()) {
  const key = `${short(k.name)} grid ${k.grid}`;
  const s = by.get(key) ?? { n: 0, us: 0, mb: 0 };
  s.n++;
  s.us += k.us;
  s.mb += k.mb;
  by.set(key, s);
  total += k.us;
}
console.log(`${kernels.size} kernels, ${total.toFixed(1)} us summed`);
console.log('kernel | count | summed us | mean us | mean DRAM MB read');
for (const [key, s] of [...by].sort((a, b) => b[1].us - a[1].us))
  console.log(`${key} | ${s.n} | ${s.us.toFixed(1)} | ${(s.us / s.n).toFixed(2)} | ${(s.mb / s.n).toFixed(2)}`);
