// Every ```js block of docs/classical.md runs as a script the way test/readme.test.ts runs the
// README's (CommonJS, top-level await allowed), through the built package (dist/).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..', '..');
const doc = fs.readFileSync(path.join(root, 'docs', 'classical.md'), 'utf8');
const blocks = [...doc.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);

describe('docs/classical.md examples', () => {
  it('has examples', () => expect(blocks.length).toBeGreaterThan(4));
  blocks.forEach((code, i) =>
    it(`example ${i + 1} runs`, () => {
      expect(fs.existsSync(path.join(root, 'dist', 'lib', 'index.mjs')), 'dist/ is missing: run `npm run build:ts` first').toBe(true);
      // inside the package, so require('statespace') resolves to this checkout
      fs.mkdirSync(path.join(root, '.test-tmp'), { recursive: true });
      const file = path.join(root, '.test-tmp', `classical-doc-${process.pid}-${i}.js`);
      fs.writeFileSync(file, `(async () => {\n${code}\n})().catch((e) => { console.error(e); process.exit(1); });\n`);
      try {
        const out = execFileSync(process.execPath, [file], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        expect(out).not.toMatch(/NaN/);
      } finally {
        fs.rmSync(file);
      }
    }),
  );
});
