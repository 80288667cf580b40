#!/usr/bin/env node
// EXPERIMENT (selective scan, third session; removed once the knobs are settled): times the CUDA
// forward at the prefill shape (1x5120x2048x16) and the bench shape (4x4096x4096x16) under the
// temporary env knob STATESPACE_SCAN_TP, and checks each variant's y against the sequential kernel's.
// Run after `npm run build:ts`: node scripts/scan_sweep.js [cuda:0]
'use strict';
const path = require('node:path');
const root = path.resolve(__dirname, '..');
const { rand, randn, selectiveScan } = require(path.join(root, 'dist/lib/index.js'));
const { timeIt } = require(path.join(root, 'dist/bench/timing.js'));

const device = process.argv[2] || 'cuda:0';

function inputs(s, dtype) {
  const io = [s.batch, s.dim, s.seqlen], bc = [s.batch, s.dstate, s.seqlen];
  let seed = 1;
  const o = { dtype, device };
  return {
    u: randn(io, { ...o, seed: seed++ }),
    delta: rand(io, { ...o, seed: seed++, low: -3, high: 0 }),
    z: randn(io, { ...o, seed: seed++ }),
    B: randn(bc, { ...o, seed: seed++ }),
    C: randn(bc, { ...o, seed: seed++ }),
    A: rand([s.dim, s.dstate], { device, seed: seed++, low: -16, high: -1 }),
    D: randn([s.dim], { device, seed: seed++ }),
    deltaBias: rand([s.dim], { device, seed: seed++, low: -1, high: 0 }),
    deltaSoftplus: true,
    returnLastState: true,
  };
}

function setEnv(env) {
  delete process.env.STATESPACE_SCAN_TP;
  for (const [k, v] of Object.entries(env)) process.env[k] = String(v);
}

function values(t) {
  const f = t.astype('float32');
  const a = Float64Array.from(f.dataSync());
  f.dispose();
  return a;
}

function maxRel(a, b) {
  let m = 0, s = 0;
  for (let i = 0; i < a.length; i++) s = Math.max(s, Math.abs(b[i]));
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m / (s || 1);
}

function sweep(name, shape, dtype, configs) {
  const opts = inputs(shape, dtype);
  setEnv({ STATESPACE_SCAN_TP: 0 });
  const ref = selectiveScan(opts);
  const refY = values(ref.y), refS = values(ref.lastState);
  ref.y.dispose();
  ref.lastState.dispose();
  console.log(`\n${name} ${shape.batch}x${shape.dim}x${shape.seqlen}x${shape.dstate} ${dtype}`);
  console.log('config                                   median ms   min ms   y max|diff|/max|y|  lastState');
  for (const env of configs) {
    setEnv(env);
    const out = selectiveScan(opts);
    const dy = maxRel(values(out.y), refY), ds = maxRel(values(out.lastState), refS);
    out.y.dispose();
    out.lastState.dispose();
    const t = timeIt(device, () => {
      const r = selectiveScan(opts);
      r.y.dispose();
      r.lastState.dispose();
    }, { iters: 30, warmup: 3 });
    const label = Object.entries(env).map(([k, v]) => `${k.replace('STATESPACE_SCAN_', '')}=${v}`).join(' ') || 'default';
    console.log(`${label.padEnd(40)} ${t.ms.toFixed(4).padStart(9)} ${t.min.toFixed(4).padStart(8)}   ${dy.toExponential(2).padStart(10)}  ${ds.toExponential(2)}`);
  }
  for (const v of Object.values(opts)) if (v && typeof v.dispose === 'function') v.dispose();
  setEnv({});
}

const prefill = { batch: 1, dim: 5120, seqlen: 2048, dstate: 16 };
const benchShape = { batch: 4, dim: 4096, seqlen: 4096, dstate: 16 };
// `profile-prefill` / `profile-bench`: six plain forward calls of one shape (for ncu), nothing else
const mode = process.argv[3] || 'sweep';
if (mode.startsWith('profile-')) {
  const opts = inputs(mode === 'profile-prefill' ? prefill : benchShape, 'bfloat16');
  for (let i = 0; i < 6; i++) {
    const r = selectiveScan(opts);
    r.y.dispose();
    r.lastState.dispose();
  }
  require(path.join(root, 'dist/lib/index.js')).synchronizeSync(device);
  process.exit(0);
}
// TP: the time-parallel forward's variant (1: 8 steps x 32 lanes, 2: 16 x 16, 4: 8 x 16; 0: the
// sequential kernel, with its time segments at the prefill shape)
const tp = [{ STATESPACE_SCAN_TP: 0 }, { STATESPACE_SCAN_TP: 1 }, { STATESPACE_SCAN_TP: 2 }, { STATESPACE_SCAN_TP: 4 }];
sweep('prefill', prefill, 'bfloat16', tp);
sweep('bench', benchShape, 'bfloat16', tp);
sweep('bench', benchShape, 'float32', tp);
sweep('prefill', prefill, 'float32', tp);
