// The local box child's process settings: glibc asked for transparent huge pages on its heaps
// (src/localbox/index.ts childTunables: page faults per GiB moved), the caller's own tunables kept
// and an explicit hugetlb choice never overridden; checked in the real child's /proc environment.
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { childTunables } from '../../src/localbox/index.ts';
import { glibcTunablesOf } from '../helpers/processes.ts';
import { makeBox } from './helpers.ts';

const THP_MODE = '/sys/kernel/mm/transparent_hugepage/enabled';

test('childTunables: adds hugetlb=1, keeps the rest, leaves an explicit hugetlb alone', () => {
  assert.is(childTunables(undefined), 'glibc.malloc.hugetlb=1');
  assert.is(childTunables(''), 'glibc.malloc.hugetlb=1');
  assert.is(childTunables('glibc.malloc.mmap_threshold=262144'), 'glibc.malloc.mmap_threshold=262144:glibc.malloc.hugetlb=1');
  assert.is(childTunables('glibc.malloc.hugetlb=0'), 'glibc.malloc.hugetlb=0');
  assert.is(childTunables('glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2'), 'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2');
});

test('the box child runs with the caller’s tunables plus hugetlb=1, and serves bytes exactly', async () => {
  const before = process.env.GLIBC_TUNABLES;
  process.env.GLIBC_TUNABLES = 'glibc.malloc.mmap_threshold=262144';
  let t;
  try {
    t = await makeBox();
  } finally {
    if (before === undefined) delete process.env.GLIBC_TUNABLES;
    else process.env.GLIBC_TUNABLES = before;
  }
  try {
    assert.is(glibcTunablesOf(t.box.pid), 'GLIBC_TUNABLES=glibc.malloc.mmap_threshold=262144:glibc.malloc.hugetlb=1');
    const acc = await t.box.createAccount('env');
    const data = Buffer.alloc(9 * 1024 * 1024 + 123);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i - (i + 4 > data.length ? 4 : 0));
    const up = await t.call('files/upload', acc.accessToken, { arg: { path: '/env.bin' }, body: data, headers: { 'Content-Type': 'application/octet-stream' } });
    assert.is(up.status, 200, await up.clone().text());
    const down = await t.call('files/download', acc.accessToken, { arg: { path: '/env.bin' } });
    assert.is(down.status, 200);
    assert.ok(Buffer.from(await down.arrayBuffer()).equals(data), 'bytes differ');
    // The tunable at work: with THP in madvise mode (Linux's default) glibc's madvise is what gives
    // the box huge pages at all (10-12 MiB after this upload; 0 with glibc.malloc.hugetlb=0).
    const thp = existsSync(THP_MODE) ? /\[(\w+)\]/.exec(readFileSync(THP_MODE, 'utf8'))?.[1] : undefined;
    if (thp === 'madvise' || thp === 'always') {
      const huge = Number(/^AnonHugePages:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${t.box.pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0);
      assert.ok(huge > 0, `THP ${thp}, yet the box holds no huge pages`);
    }
  } finally {
    await t.cleanup();
  }
});

test.run();
