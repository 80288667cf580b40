#!/usr/bin/env node
// Builds the native addon. With --install (the npm install hook) a prebuilt binary that loads
// is used as is. Otherwise: cmake-js (CUDA when a CUDA compiler is found; STATESPACE_CUDA=0
// forces CPU-only, STATESPACE_CUDA_ARCHS picks targets), then node-gyp (CPU-only) as fallback.
// Nothing is downloaded: cmake-js takes Node-API headers from the node-api-headers package.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const install = process.argv.includes('--install');
const tried = [];

function run(cmd, args, extraEnv = {}) {
  console.log(`statespace: ${[cmd, ...args].join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...extraEnv } });
  return r.status === 0;
}

function loads() {
  const r = spawnSync(process.execPath, ['-e', `require('node-gyp-build')(${JSON.stringify(root)})`], {
    cwd: root,
    encoding: 'utf8',
  });
  return { ok: r.status === 0, why: (r.stderr || '').split('\n').find((l) => l.trim()) || '' };
}

if (install && !process.env.STATESPACE_BUILD_FROM_SOURCE) {
  const prebuilds = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  if (fs.existsSync(prebuilds)) {
    const l = loads();
    if (l.ok) {
      console.log(`statespace: using the prebuilt binary in ${path.relative(root, prebuilds)}`);
      process.exit(0);
    }
    tried.push(`prebuilt binary in ${prebuilds}: ${l.why}`);
  } else {
    tried.push(`prebuilt binary: none for ${process.platform}-${process.arch}`);
  }
}

const jobs = String(Math.max(1, require('node:os').availableParallelism?.() ?? require('node:os').cpus().length));
let cmakeJs;
try {
  cmakeJs = require.resolve('cmake-js/bin/cmake-js');
} catch {
  tried.push('cmake-js: the package is not installed');
}
const hasCmake = spawnSync('cmake', ['--version'], { stdio: 'ignore' }).status === 0;
if (cmakeJs && !hasCmake) tried.push('cmake-js: no `cmake` on PATH');
if (cmakeJs && hasCmake) {
  const defs = [
    `--CDSTATESPACE_CUDA=${process.env.STATESPACE_CUDA ?? 'AUTO'}`,
    `--CDSTATESPACE_CUDA_ARCHS=${(process.env.STATESPACE_CUDA_ARCHS || '80;90a').replace(/,/g, ';')}`,
  ];
  // cmake-js `compile` reuses a configured build folder as is; when the CUDA settings changed
  // since it was configured, reconfigure from scratch (`rebuild`) so they take effect.
  const stamp = path.join(root, 'build', 'statespace-settings.json');
  const settings = JSON.stringify(defs);
  const same = fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === settings;
  if (run(process.execPath, [cmakeJs, same ? 'compile' : 'rebuild', '--out', 'build', ...defs], { CMAKE_BUILD_PARALLEL_LEVEL: jobs })) {
    fs.writeFileSync(stamp, settings);
    process.exit(0);
  }
  tried.push('cmake-js: the build failed (see the output above)');
}

// npm sets npm_config_node_gyp to its bundled node-gyp; outside npm, look beside node.
const nodeGyp = [
  process.env.npm_config_node_gyp,
  path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].find((p) => p && fs.existsSync(p));
let gypArgs = null;
if (nodeGyp) gypArgs = [nodeGyp];
else {
  try {
    gypArgs = [require.resolve('node-gyp/bin/node-gyp.js')];
  } catch {
    tried.push('node-gyp: not found (npm normally provides it)');
  }
}
if (gypArgs) {
  // Build against this Node's own headers rather than letting node-gyp download them.
  const nodedir =
    process.env.npm_config_nodedir ||
    [process.config.variables.node_prefix, path.resolve(path.dirname(process.execPath), '..')].find(
      (p) => p && fs.existsSync(path.join(p, 'include', 'node', 'node_api.h')),
    );
  if (!nodedir) tried.push('node-gyp: no local Node headers (set npm_config_nodedir); not downloading any');
  else if (run(process.execPath, [...gypArgs, 'rebuild', `--jobs=${jobs}`, `--nodedir=${nodedir}`])) process.exit(0);
  tried.push('node-gyp: the CPU-only build failed (see the output above)');
}

console.error(
  ['statespace: could not build or find the native addon. Tried:', ...tried.map((t) => `  - ${t}`),
    'Fix: install CMake (>= 3.18) and a C++17 compiler (plus nvcc for CUDA), then run `npm rebuild statespace`.',
  ].join('\n'),
);
process.exit(1);
