#!/usr/bin/env node
// The dropftp command. Registers the TypeScript loader (tsx) and runs src/cli/main.ts, so that
// the project runs from source on a fresh clone after `npm ci`, with no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
