#!/usr/bin/env node
// Lists the C++ sources of the CPU-only build for binding.gyp (the same globs as CMakeLists.txt).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const root = path.resolve(__dirname, '..');
const dirs = ['csrc/core', 'csrc/ops', 'csrc/cpu', 'csrc/binding'];
const files = dirs.flatMap((d) =>
  fs.readdirSync(path.join(root, d)).filter((f) => f.endsWith('.cc')).sort().map((f) => `${d}/${f}`),
);
console.log(files.join(' '));
