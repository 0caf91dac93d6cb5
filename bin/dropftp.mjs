#!/usr/bin/env node
// The dropftp command: runs the compiled CLI (dist/src/cli/main.js, built by `npm run build`, which
// `npm ci` runs) with plain node. Under the "source" export condition (`node -C source …`, set by
// test/run.mjs for the tests) it registers tsx and runs src/cli/main.ts instead: package.json's
// "#dropftp/cli" import map picks the file, so both forms run the same code.
if (import.meta.resolve('#dropftp/cli').endsWith('.ts')) {
  const { register } = await import('tsx/esm/api');
  register();
}
const { main } = await import('#dropftp/cli');
process.exitCode = await main(process.argv.slice(2));
