// Generates src/generated/{commands,queries}.ts from the services' live OpenAPI documents (`/openapi.json` of a
// command-service and a query-service started for it, with AUTH_MODE=none): `npm run generate` after an API change.
// The tests compare what this generates with the files checked in, so stale types fail them.

import { readFile, writeFile } from 'node:fs/promises';
import openapiTS, { astToString } from 'openapi-typescript';

const HEADER = (service) =>
  `// Generated from the ${service}'s /openapi.json by \`npm run generate\` (scripts/generate.mjs): do not edit.\n\n`;

/** The generated files, by path under the package, from the services at `commandsUrl` and `queriesUrl`. */
export async function generate(commandsUrl, queriesUrl) {
  const files = {};
  for (const [file, service, url] of [
    ['src/generated/commands.ts', 'command-service', commandsUrl],
    ['src/generated/queries.ts', 'query-service', queriesUrl],
  ]) {
    const response = await fetch(`${url}/openapi.json`);
    if (!response.ok) throw new Error(`${url}/openapi.json answered ${response.status}`);
    files[file] = HEADER(service) + astToString(await openapiTS(await response.json()));
  }
  return files;
}

/** The generated files that differ from the ones checked in. */
export async function stale(files) {
  const package_ = new URL('../', import.meta.url);
  const differing = [];
  for (const [file, contents] of Object.entries(files)) {
    const current = await readFile(new URL(file, package_), 'utf8').catch(() => '');
    if (current !== contents) differing.push(file);
  }
  return differing;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { Deployment } = await import('../test/services.mjs');
  const deployment = await Deployment.start();
  try {
    const query = await deployment.query({ projector: false });
    const files = await generate(deployment.commands.url, query.url);
    const package_ = new URL('../', import.meta.url);
    for (const [file, contents] of Object.entries(files)) await writeFile(new URL(file, package_), contents);
    console.log(`wrote ${Object.keys(files).join(', ')}`);
  } finally {
    await deployment.close();
  }
}
