#!/usr/bin/env node
// `npm run prebuild`: writes prebuilds/<platform>-<arch>/ with a CUDA-enabled binary (when nvcc
// is present) that the loader picks up. prebuildify drives the build through the command in
// PREBUILD_NODE_GYP; we point it at scripts/build-addon.js (cmake-js) instead of node-gyp.
// npm also runs a script named "prebuild" as a hook before `npm run build`; then this exits at once.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

function npmArgs() {
  // walk up the process tree to the npm that started us (Linux /proc; elsewhere: unknown)
  for (let pid = process.ppid, i = 0; pid > 1 && i < 6; i++) {
    try {
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (argv.some((a) => /npm-cli\.js$|\/npm$/.test(a))) return argv;
      pid = Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
    } catch {
      return null;
    }
  }
  return null;
}

const args = npmArgs();
if (args && !args.includes('prebuild') && args.includes('build')) process.exit(0);

const root = path.resolve(__dirname, '..');
const r = spawnSync(process.execPath, [require.resolve('prebuildify/bin.js'), '--napi', '--strip'], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, PREBUILD_NODE_GYP: path.join(__dirname, 'build-addon.js') },
});
process.exit(r.status ?? 1);
