#!/usr/bin/env node
// Summarises one decode step of an nsys GPU trace (nsys stats -r cuda_gpu_trace -f csv):
// the step is the span between the last two argmax kernels (argmax ends a greedy step). Per
// kernel name and grid size: count, summed duration, and the summed gap from the previous kernel's end to
// its start (negative: it overlapped its predecessor, as programmatic launches may).
// Usage: node scripts/kernel_timeline.js trace.csv
'use strict';
const fs = require('node:fs');

function parseCsv(text) {
  const rows = [];
  for (const line of text.split(/\r?\n/)) {
    if (!line.trim()) continue;
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
    rows.push(cells);
  }
  return rows;
}

const rows = parseCsv(fs.readFileSync(process.argv[2], 'utf8'));
const head = rows.findIndex((r) => r.some((c) => /^Start/.test(c)));
const cols = rows[head];
const col = (re) => cols.findIndex((c) => re.test(c));
const [cs, cd, cn, cg] = [col(/^Start/), col(/^Duration/), col(/^Name$/), col(/^Gr[i]?dX/)];
const ev = rows
  .slice(head + 1)
  .map((r) => ({ start: Number(r[cs]), dur: Number(r[cd]), name: r[cn], grid: cg >= 0 ? r[cg] : '?' }))
  .filter((e) => Number.isFinite(e.start) && Number.isFinite(e.dur) && !/memcpy|memset/i.test(e.name))
  .sort((a, b) => a.start - b.start);
// The kernel's name without namespaces and template arguments.
const short = (n) => {
  const m = /(\w+)\s*[<(]/.exec(n);
  return (m ? m[1] : n).slice(0, 40);
};
const ends = ev.map((e, i) => (/argmax/i.test(e.name) ? i : -1)).filter((i) => i >= 0);
if (ends.length < 2) throw new Error('fewer than two argmax kernels in the trace');
const step = ev.slice(ends[ends.length - 2] + 1, ends[ends.length - 1] + 1);
const by = new Map();
let prevEnd = ev[ends[ends.length - 2]].start + ev[ends[ends.length - 2]].dur;
for (const e of step) {
  const k = `${short(e.name)} (grid ${e.grid})`;
  const s = by.get(k) ?? { n: 0, dur: 0, gap: 0 };
  s.n++;
  s.dur += e.dur;
  s.gap += e.start - prevEnd;
  by.set(k, s);
  prevEnd = Math.max(prevEnd, e.start + e.dur);
}
const span = step[step.length - 1].start + step[step.length - 1].dur - step[0].start;
const sumDur = step.reduce((a, e) => a + e.dur, 0);
console.log(`one step: ${step.length} kernels, span ${(span / 1e3).toFixed(1)} us, summed durations ${(sumDur / 1e3).toFixed(1)} us`);
console.log('kernel | count | summed us | mean us | summed gap before us');
for (const [k, s] of [...by].sort((a, b) => b[1].dur - a[1].dur))
  console.log(`${k} | ${s.n} | ${(s.dur / 1e3).toFixed(1)} | ${(s.dur / s.n / 1e3).toFixed(2)} | ${(s.gap / 1e3).toFixed(1)}`);
