// Runs every ```js example in README.md as a script (CommonJS, top-level await allowed), so the
// documentation stays runnable. Examples marked ```js gpu run only where a CUDA device exists.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasCuda } from './helpers';

const root = path.resolve(__dirname, '..');
const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/```js( gpu)?\n([\s\S]*?)```/g)].map((m) => ({ gpu: !!m[1], code: m[2] }));

describe('README examples', () => {
  it('has examples', () => expect(blocks.length).toBeGreaterThan(10));
  blocks.forEach((b, i) => {
    (b.gpu && !hasCuda ? it.skip : it)(`example ${i + 1} runs`, () => {
      // inside the package, so require('statespace') resolves to this checkout
      fs.mkdirSync(path.join(root, '.test-tmp'), { recursive: true });
      const file = path.join(root, '.test-tmp', `readme-${process.pid}-${i}.js`);
      fs.writeFileSync(file, `(async () => {\n${b.code}\n})().catch((e) => { console.error(e); process.exit(1); });\n`);
      const out = execFileSync(process.execPath, [file], { cwd: root, encoding: 'utf8' });
      expect(out).not.toMatch(/NaN/);
      fs.rmSync(file);
    });
  });
});
