// Regression: a spool file emptied by an acknowledgement while its upload's reader spools more
// (workers/retention.ts dropFile). The file being written was truncated and written again from 0;
// a write the reader claimed while the truncate was on its way could land first and be erased, and
// its bytes read back as zeros, silently (3 of 300 rounds here). Main thread only: a real control
// block, a real ring and real spool files, no worker; each round races the release against the fill.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RingReader, RingWriter, createRing } from 'native-free-ringbuf';
import { createControl } from '../../src/transfer/shared-layout.ts';
import { createThreadContext } from '../../workers/thread-context.ts';
import { Retention } from '../../workers/retention.ts';

const KiB = 1024;
const MiB = 1024 * 1024;
const ROUNDS = 400;

test('bytes spooled while an acknowledgement empties the spool file being written read back as written', async () => {
  // A 256 KiB memory share: past one piece, an upload's bytes go to the spool.
  const ctx = createThreadContext(createControl({ uploadMemoryBytes: 256 * KiB, spoolBytes: 256 * MiB }));
  const dir = mkdtempSync(join(tmpdir(), 'dropftp-spool-reuse-'));
  const failures: string[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const handle = createRing(4 * MiB);
      const writer = new RingWriter(handle);
      const reader = new RingReader(handle);
      const retention = new Retention(ctx, dir, round + 1, 64 * MiB, 0);
      try {
        // 2 MiB retained (256 KiB in memory, the rest in the file being written), then acknowledged
        // while the next 1 MiB is taken from the ring: the release empties that file as the fill
        // spools into it.
        const first = Buffer.alloc(2 * MiB, 1 + (round % 200));
        writer.write(first, 0, first.length);
        while (retention.end < first.length) await retention.fill(reader, () => {});
        const next = Buffer.alloc(1 * MiB);
        for (let i = 0; i < next.length; i += 4) next.writeUInt32LE((round * 0x9e3779b1 + i) >>> 0, i);
        writer.write(next, 0, next.length);
        const released = retention.release(first.length);
        const filled = (async () => {
          while (retention.end < first.length + next.length) await retention.fill(reader, () => {});
        })();
        await Promise.all([released, filled]);
        const back: Buffer[] = [];
        for await (const piece of retention.body(first.length, first.length + next.length)) back.push(Buffer.from(piece));
        const all = Buffer.concat(back);
        if (!all.equals(next)) {
          let at = 0;
          while (at < all.length && all[at] === next[at]) at++;
          failures.push(`round ${round}: ${all.length} B read back, first wrong byte at ${at} (${all[at]}, not ${next[at]})`);
        }
      } catch (err) {
        failures.push(`round ${round}: ${String(err)}`);
      } finally {
        await retention.destroy();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(failures, [], `${failures.length} of ${ROUNDS} rounds read back other bytes`);
});

test.run();
