// Module hooks for running the tests against the build (TEST_DIST=1 node test/run.mjs …):
// every import that resolves to a TypeScript source of src/, workers/ or native-free-ringbuf/src/
// loads the compiled file of dist/ (native-free-ringbuf/dist/) instead, so the test files stay
// TypeScript while the code under test is what ships. Registered with `--import` in the test
// process (main thread); a source without its compiled file fails the import (build first).
import { existsSync } from 'node:fs';
import { register } from 'node:module';
import { isMainThread } from 'node:worker_threads';

const ROOT = new URL('../', import.meta.url).href;
const MAP = [
  [`${ROOT}src/`, `${ROOT}dist/src/`],
  [`${ROOT}workers/`, `${ROOT}dist/workers/`],
  [`${ROOT}native-free-ringbuf/src/`, `${ROOT}native-free-ringbuf/dist/`],
];

if (isMainThread) register(import.meta.url);

export async function resolve(specifier, context, nextResolve) {
  const result = await nextResolve(specifier, context);
  if (!result.url.endsWith('.ts')) return result;
  for (const [from, to] of MAP) {
    if (!result.url.startsWith(from)) continue;
    const url = to + result.url.slice(from.length, -'.ts'.length) + '.js';
    if (!existsSync(new URL(url))) throw new Error(`dist-hooks: ${url} is missing: run \`npm run build\` first`);
    return { ...result, url, format: 'module' };
  }
  return result;
}
