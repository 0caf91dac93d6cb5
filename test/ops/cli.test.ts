// The command line of every sub-command, through the CLI's main() in this process (each case would
// otherwise cost a Node start) and, for a few, as real processes (bin/dropftp.mjs): `--help` and
// `-h` exit 0 with the usage on stdout and nothing on stderr; an unknown flag exits 2 naming it
// (serve: with the nearest known flag); a flag missing its value, or a stray argument, exits 2 too.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.ts';
import { runDropftp, type RunResult } from './lifecycle-helpers.ts';

const COMMANDS = [['serve'], ['user'], ['user', 'add'], ['user', 'list'], ['auth'], ['config'], ['config', 'show'], ['localbox'], ['localbox', 'account'], ['help']];

let dir: string;
test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dropftp-cli-'));
});
test.after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `dropftp ARGS` in this process: main()'s exit code and what it wrote (one at a time). */
async function run(args: string[]): Promise<RunResult> {
  const out = process.stdout.write;
  const err = process.stderr.write;
  let stdout = '';
  let stderr = '';
  process.stdout.write = ((chunk: string | Uint8Array) => ((stdout += String(chunk)), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => ((stderr += String(chunk)), true)) as typeof process.stderr.write;
  try {
    return { code: await main(args), stdout, stderr };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

async function all<T, R>(items: T[], each: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (const item of items) results.push(await each(item));
  return results;
}

test('--help and -h on every command: exit 0, usage on stdout', async () => {
  const runs = COMMANDS.flatMap((command) => [[...command, '--help'], [...command, '-h']]);
  const results = await all(runs, (args) => run(args));
  results.forEach((r, i) => {
    const args = runs[i]!.join(' ');
    assert.is(r.code, 0, `dropftp ${args}: exit ${r.code}: ${r.stderr}`);
    assert.match(r.stdout, /usage/i, `dropftp ${args}: ${r.stdout}`);
    assert.is(r.stderr, '', `dropftp ${args}`);
  });
  const serve = results[0]!.stdout;
  assert.match(serve, '--limits-max-connections-per-address');
  assert.match(serve, 'DROPFTP_LIMITS_MAX_CONNECTIONS_PER_ADDRESS');
  assert.match(results[COMMANDS.findIndex((c) => c.join() === 'localbox') * 2]!.stdout, /--data-dir DIR\s+storage/);
});

test('unknown flags exit 2 naming the flag', async () => {
  const runs: [string[], RegExp][] = [
    [['serve', '--listn', '127.0.0.1:0'], /--listn: unknown flag \(did you mean --listen\?\)/],
    [['serve', '--bogus'], /--bogus: unknown flag/],
    [['localbox', '--data-dir', join(dir, 'lb'), '--bogus', '1'], /unknown option --bogus/],
    [['localbox', 'account', 'add', 'x', '--data-dir', join(dir, 'lb'), '--bogus'], /unknown option --bogus/],
    [['user', 'list', '--data-dir', dir, '--root', '/x'], /unknown option --root for "user list"/],
    [['auth', '--app-key', 'k', '--bogus'], /unknown option --bogus/],
    [['config', 'show', '--bogus'], /--bogus: unknown flag/],
  ];
  const results = await all(runs, ([args]) => run(args));
  results.forEach((r, i) => {
    assert.is(r.code, 2, `dropftp ${runs[i]![0].join(' ')}: exit ${r.code}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, runs[i]![1]);
  });
});

test('as real processes: serve --help exits 0 with the usage; localbox --bogus exits 2 naming it', async () => {
  const [help, bogus] = await Promise.all([runDropftp(['serve', '--help']), runDropftp(['localbox', '--data-dir', join(dir, 'lb'), '--bogus'])]);
  assert.is(help.code, 0, help.stderr);
  assert.match(help.stdout, /^usage: dropftp serve/);
  assert.is(bogus.code, 2);
  assert.match(bogus.stderr, 'dropftp localbox: unknown option --bogus');
});

test('missing values and stray arguments exit 2; bool flags take an optional =value', async () => {
  const runs: [string[], RegExp][] = [
    [['localbox', '--data-dir'], /--data-dir needs a value/],
    [['localbox', '--listen', '127.0.0.1:0'], /--data-dir is required/],
    [['localbox', '--data-dir', join(dir, 'lb'), 'extra'], /unexpected argument "extra"/],
    [['serve', '--listen'], /--listen needs a value/],
    [['serve', '--listen', '--data-dir', dir], /--listen needs a value/],
    [['serve', 'extra'], /unexpected argument "extra"/],
  ];
  const results = await all(runs, ([args]) => runDropftp(args));
  results.forEach((r, i) => {
    assert.is(r.code, 2, `dropftp ${runs[i]![0].join(' ')}: exit ${r.code}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, runs[i]![1]);
  });
  const [bare, off, aliased] = await all(
    [
      ['config', 'show', '--no-workers', '--listen', '127.0.0.1:9'],
      ['config', 'show', '--no-workers=false', '--engine-no-workers'],
      ['config', 'show', '--engine-no-workers=true', '--no-workers=false'],
    ],
    run,
  );
  for (const r of [bare, off, aliased]) assert.is(r.code, 0, r.stderr);
  assert.is((JSON.parse(bare.stdout) as { config: { engine: { noWorkers: boolean } } }).config.engine.noWorkers, true);
  assert.is((JSON.parse(off.stdout) as { config: { engine: { noWorkers: boolean } } }).config.engine.noWorkers, true, 'the later flag wins');
  assert.is((JSON.parse(aliased.stdout) as { config: { engine: { noWorkers: boolean } } }).config.engine.noWorkers, false, 'the later flag wins');
});

test.run();
