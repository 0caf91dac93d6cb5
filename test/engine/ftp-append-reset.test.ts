// Through FTP: a reset in the middle of an append's body (and of the start call's) is retried from
// the upload's retention, invisibly to the client: the STOR ends 226 and the store holds identical
// bytes; then a RETR of it is one files/download call. The whole service (startDropftp) with the
// engine kept to 8 MiB of memory retention (no spool), so an 11 MiB STOR takes start + 2 appends.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startDropftp } from '../../src/server.ts';
import type { Dropftp } from '../../src/server.ts';
import { RawFtp, download, upload } from '../ftp/helpers/raw-client.ts';
import { BoxView } from '../reliability/helpers.ts';
import { MiB, makePool, sha256 } from './helpers.ts';

let service: Dropftp;
let dataDir: string;
let view: BoxView;
let user: { name: string; password: string };

test.before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'dropftp-append-reset-'));
  service = await startDropftp({ dataDir, host: '127.0.0.1', port: 0, engineWorkers: 2, engine: { spoolBytes: 0, appendMemoryBytes: 8 * MiB } });
  user = service.createdUser!;
  view = await BoxView.open(service.box.url, dataDir);
});
test.after(async () => {
  await service.box.setFaults({ rules: [] }).catch(() => {});
  await service.close();
  await rm(dataDir, { recursive: true, force: true });
});

test('resets in the middle of start and append bodies: STOR still ends 226 with identical bytes', async () => {
  const data = makePool(11 * MiB + 5, 77);
  await service.box.setFaults({
    rules: [
      { kind: 'reset', routes: ['files/upload_session/append_v2'], afterBytes: 1 * MiB, count: 1 },
      { kind: 'reset', routes: ['files/upload_session/start'], afterBytes: 2 * MiB, count: 1 },
    ],
  });
  const before = service.engine.stats().requests;
  const c = await RawFtp.connect(service.port);
  try {
    await c.login(user.name, user.password);
    await c.cmd('TYPE I');
    const { final } = await upload(c, 'STOR /reset.bin', data);
    const counts = await service.box.faultCounts();
    await service.box.setFaults({ rules: [] });
    assert.is(final.code, 226, final.text);
    assert.ok((counts.reset ?? 0) >= 2, `both resets fired: ${JSON.stringify(counts)}`);
    const after = service.engine.stats().requests;
    const n = (route: string, status: string) => (after[route]?.[status] ?? 0) - (before[route]?.[status] ?? 0);
    assert.is(n('files/upload_session/start', '200'), 1);
    assert.is(n('files/upload_session/append_v2', '200'), 2);
    const stored = await view.download('/reset.bin');
    assert.is(stored && sha256(stored), sha256(data), 'identical bytes');
    const downloadsBefore = after['files/download']?.['200'] ?? 0;
    const got = await download(c, 'RETR /reset.bin');
    assert.is(got.final.code, 226, got.final.text);
    assert.is(sha256(got.data), sha256(data));
    assert.is((service.engine.stats().requests['files/download']?.['200'] ?? 0) - downloadsBefore, 1, 'one files/download call');
  } finally {
    c.close();
  }
});

test.run();
