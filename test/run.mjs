#!/usr/bin/env node
// Runs every test file (test/**/*.test.ts, native-free-ringbuf tests included) in its own Node
// process under tsx, so that no file can leak sockets or timers into another. The code under test
// runs from source: NODE_OPTIONS gets `--conditions=source` (inherited by every process and worker
// the tests start), which points native-free-ringbuf and bin/dropftp.mjs at the TypeScript sources.
// With TEST_DIST=1 it runs against the build instead: no "source" condition, and
// test/dist-hooks.mjs maps the tests' imports of src/ and workers/ to dist/ (run `npm run build`).
// Prints each file's uvu summary, then one closing line "N passed, N failed".
// Usage: node test/run.mjs [regex filter on file paths]   (env TEST_JOBS: files run at once, default 1)

import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const filter = process.argv[2] ? new RegExp(process.argv[2]) : null;
// One file at a time by default: the CI machine has 2 cores, and several suites measure timing
// (fairness windows, stall timeouts) that a neighbouring suite would distort.
const jobs = Math.max(1, Number(process.env.TEST_JOBS ?? 1));
const fileTimeoutMs = Number(process.env.TEST_FILE_TIMEOUT_MS ?? 10 * 60 * 1000);
const againstDist = process.env.TEST_DIST === '1';
const nodeArgs = ['--import', 'tsx', ...(againstDist ? ['--import', './test/dist-hooks.mjs'] : [])];
const inherited = (process.env.NODE_OPTIONS ?? '').replace(/(--conditions[= ]|-C ?)source\b/g, '').trim();
const nodeOptions = againstDist ? inherited : `${inherited} --conditions=source`.trim();
if (againstDist) console.log('running against the build (dist/)');

function find(dir, out = []) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) find(p, out);
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const files = [...find(join(root, 'test')), ...find(join(root, 'native-free-ringbuf', 'test'))]
  .map((f) => relative(root, f))
  .filter((f) => !filter || filter.test(f))
  .sort();

let passed = 0;
let failed = 0;
const failures = [];

function runFile(file) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [...nodeArgs, file], {
      cwd: root,
      env: { ...process.env, NODE_OPTIONS: nodeOptions, NO_COLOR: '1', FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => {
      out += `\n[run] ${file} exceeded ${fileTimeoutMs} ms, killed\n`;
      child.kill('SIGKILL');
    }, fileTimeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const total = Number(/Total:\s+(\d+)/.exec(out)?.[1] ?? NaN);
      const ok = Number(/Passed:\s+(\d+)/.exec(out)?.[1] ?? NaN);
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      if (Number.isNaN(total) || Number.isNaN(ok)) {
        failed += 1;
        failures.push(file);
        process.stdout.write(`✘ ${file}: no uvu summary (exit ${code ?? signal}) in ${seconds}s\n${out}\n`);
      } else {
        const bad = total - ok + (code !== 0 && total === ok ? 1 : 0);
        passed += ok;
        failed += bad;
        if (bad > 0) failures.push(file);
        process.stdout.write(`${bad ? '✘' : '✔'} ${file}: ${ok}/${total} passed in ${seconds}s\n`);
        if (bad > 0 || process.env.TEST_VERBOSE) process.stdout.write(out + '\n');
      }
      resolve();
    });
  });
}

const queue = [...files];
await Promise.all(
  Array.from({ length: Math.min(jobs, queue.length) }, async () => {
    while (queue.length) await runFile(queue.shift());
  }),
);

if (files.length === 0) {
  console.log('no test files found');
  failed += 1;
}
if (failures.length) console.log(`failed files: ${failures.join(', ')}`);
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed > 0 ? 1 : 0;
