// What is generated stays what its sources make: the wire types are those of the services' live OpenAPI documents,
// and dist/ (what the demo page and every caller load) is what src/ compiles to.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

import { generate, stale } from '../scripts/generate.mjs';
import { Deployment } from './services.mjs';

const run = promisify(execFile);
const package_ = new URL('../', import.meta.url).pathname;

test('the generated types are those of the live OpenAPI documents', async () => {
  const deployment = await Deployment.start();
  try {
    const query = await deployment.query({ projector: false });
    const files = await generate(deployment.commands.url, query.url);
    assert.deepEqual(await stale(files), [], 'stale: run `npm run generate` in clients/typescript and commit');
    // And the comparison sees a change: one member less is stale.
    const [first] = Object.keys(files);
    const changed = { [first]: files[first].replace('orderId', 'orderNumber') };
    assert.deepEqual(await stale(changed), [first]);
  } finally {
    await deployment.close();
  }
});

test('dist is what src compiles to', async () => {
  const out = await mkdtemp(join(tmpdir(), 'orders-client-'));
  try {
    await run(join(package_, 'node_modules', '.bin', 'tsc'), ['-p', join(package_, 'tsconfig.json'), '--outDir', out]);
    const modules = async (dir) =>
      (await readdir(dir, { recursive: true })).filter((file) => file.endsWith('.js') || file.endsWith('.d.ts'));
    const built = await modules(out);
    const shipped = await modules(join(package_, 'dist'));
    assert.deepEqual(shipped.sort(), built.sort(), 'run `npm run build` in clients/typescript and commit dist/');
    for (const file of built) {
      const fresh = await readFile(join(out, file), 'utf8');
      const current = await readFile(join(package_, 'dist', file), 'utf8');
      assert.equal(current, fresh, `dist/${file} is stale: run \`npm run build\` in clients/typescript and commit it`);
    }
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
