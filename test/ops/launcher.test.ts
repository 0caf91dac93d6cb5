// The installed command: bin/dropftp (a shell launcher, reached through a symlink as npm's .bin
// links it) runs `node bin/dropftp.mjs` under bin/with-tuned-malloc. Checks the environment the
// real serve process gets (/proc: the malloc tunable, UV_THREADPOOL_SIZE = max(4, min(CPUs, 64))
// unless the operator set one), that it is node itself (exec, no shell left between a signal and
// the server), and that SIGTERM still ends it cleanly. Linux only (/proc), like the deployment.

import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, symlink, mkdir } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { glibcTunablesOf } from '../helpers/processes.ts';
import { startServe } from './lifecycle-helpers.ts';

const LAUNCHER = fileURLToPath(new URL('../../bin/dropftp', import.meta.url));
const TUNED = fileURLToPath(new URL('../../bin/with-tuned-malloc', import.meta.url));
const FIXED = 'glibc.malloc.mmap_threshold=262144:glibc.malloc.trim_threshold=2097152:glibc.malloc.hugetlb=1';
const POOL = Math.max(4, Math.min(availableParallelism(), 64));

function poolSeen(env: Record<string, string>, cpus?: number): string {
  // `taskset` narrows the CPUs the launcher sees (nproc reads the affinity mask, as libuv does).
  const command = cpus === undefined ? [TUNED] : ['taskset', '-c', Array.from({ length: cpus }, (_, i) => i).join(','), TUNED];
  const r = spawnSync(command[0]!, [...command.slice(1), 'sh', '-c', 'printf %s "$UV_THREADPOOL_SIZE"'], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  return r.stdout;
}

function tunablesSeen(env: Record<string, string>): string {
  const r = spawnSync(TUNED, ['sh', '-c', 'printf %s "$GLIBC_TUNABLES"'], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  return r.stdout;
}

test('with-tuned-malloc: sets the mmap and trim thresholds and huge-page heaps, keeps other tunables, never overrides an operator’s own', () => {
  assert.is(tunablesSeen({}), FIXED);
  assert.is(tunablesSeen({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }), `glibc.malloc.arena_max=2:${FIXED}`);
  assert.is(tunablesSeen({ GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=1048576' }), 'glibc.malloc.mmap_threshold=1048576:glibc.malloc.trim_threshold=2097152:glibc.malloc.hugetlb=1');
  assert.is(tunablesSeen({ GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=1' }), 'glibc.malloc.trim_threshold=1:glibc.malloc.mmap_threshold=262144:glibc.malloc.hugetlb=1');
  assert.is(tunablesSeen({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' }), 'glibc.malloc.hugetlb=0:glibc.malloc.mmap_threshold=262144:glibc.malloc.trim_threshold=2097152');
  assert.is(
    tunablesSeen({ GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=1:glibc.malloc.mmap_threshold=1:glibc.malloc.hugetlb=2' }),
    'glibc.malloc.trim_threshold=1:glibc.malloc.mmap_threshold=1:glibc.malloc.hugetlb=2',
  );
});

function nodeOptionsSeen(env: Record<string, string>): string {
  const r = spawnSync(TUNED, ['sh', '-c', 'printf %s "$NODE_OPTIONS"'], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  return r.stdout;
}

test('with-tuned-malloc: caps V8 semi-spaces at 4 MiB, keeps other NODE_OPTIONS, never overrides an operator’s own', () => {
  assert.is(nodeOptionsSeen({}), '--max-semi-space-size=4');
  assert.is(nodeOptionsSeen({ NODE_OPTIONS: '--enable-source-maps' }), '--enable-source-maps --max-semi-space-size=4');
  assert.is(nodeOptionsSeen({ NODE_OPTIONS: '--max-semi-space-size=16' }), '--max-semi-space-size=16');
  assert.is(nodeOptionsSeen({ NODE_OPTIONS: '--stack-trace-limit=50 --max-semi-space-size 2' }), '--stack-trace-limit=50 --max-semi-space-size 2');
});

test('with-tuned-malloc: UV_THREADPOOL_SIZE = max(4, min(CPUs, 64)) unless the operator set one', () => {
  assert.is(poolSeen({}), String(POOL));
  assert.is(poolSeen({ UV_THREADPOOL_SIZE: '7' }), '7');
  assert.is(poolSeen({ UV_THREADPOOL_SIZE: '' }), String(POOL), 'empty counts as unset');
  if (spawnSync('taskset', ['-c', '0', 'true']).status === 0) assert.is(poolSeen({}, 1), '4', 'one CPU: still 4');
});

test('bin/dropftp through a symlink: serve runs as node with the tuning, and SIGTERM ends it with 0', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dropftp-launcher-'));
  try {
    await mkdir(join(dir, '.bin'));
    const link = join(dir, '.bin', 'dropftp');
    await symlink(LAUNCHER, link);
    const serve = await startServe(['--listen', '127.0.0.1:0', '--data-dir', join(dir, 'data')], { GLIBC_TUNABLES: '', UV_THREADPOOL_SIZE: '', NODE_OPTIONS: '' }, true, [link]);
    const pid = serve.child.pid!;
    try {
      const environ = (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0');
      assert.is(glibcTunablesOf(pid), `GLIBC_TUNABLES=${FIXED}`, "serve's environment");
      assert.ok(environ.includes(`UV_THREADPOOL_SIZE=${POOL}`), `serve's environment: ${environ.filter((e) => e.startsWith('UV_')).join(' ') || 'no UV_THREADPOOL_SIZE'}`);
      assert.ok(environ.includes('NODE_OPTIONS=--max-semi-space-size=4'), `serve's environment: ${environ.filter((e) => e.startsWith('NODE_OPTIONS')).join(' ') || 'no NODE_OPTIONS'}`);
      const argv0 = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0')[0]!;
      assert.match(argv0, /node/, `the launcher's pid runs ${argv0}, not node`);
      serve.child.kill('SIGTERM');
      const { code } = await serve.exited;
      assert.is(code, 0, serve.stderr());
    } finally {
      serve.child.kill('SIGKILL'); // a failed check must not leave the server running
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
