// The per-transfer stall timeout counts the client's stalls only: a STOR held back while Dropbox is
// slow to take its bytes, and a RETR waiting for Dropbox's first bytes, both outlast a short
// session.stallTimeoutMs and still end 226 with identical bytes; a client that stops sending while
// the server reads still gets 426; an upload paused and resumed many times holds one stall timer.
// The whole service (startDropftp) on the real local box, whose latency fault makes Dropbox slow.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startDropftp, type Dropftp } from '../../src/server.ts';
import { RawFtp, download, openData, sleep, upload } from './helpers/raw-client.ts';
import { MiB, makePool, sha256 } from '../engine/helpers.ts';

// Wide margins: a loaded CI machine lags the event loop by hundreds of milliseconds.
const STALL_MS = 1000;
const SLOW_MS = 3000;
let service: Dropftp;
let dataDir: string;
let c: RawFtp;

test.before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'dropftp-stall-upstream-'));
  // Little retention and no spool: while a call waits on Dropbox the upload stops reading its client.
  service = await startDropftp({ dataDir, host: '127.0.0.1', port: 0, engineWorkers: 1, engine: { spoolBytes: 0, appendMemoryBytes: 1 * MiB }, limits: { stallTimeoutMs: STALL_MS } });
  c = await RawFtp.connect(service.port);
  await c.login(service.createdUser!.name, service.createdUser!.password);
  await c.cmd('TYPE I');
});
test.after(async () => {
  c.close();
  await service.box.setFaults({ rules: [] }).catch(() => {});
  await service.close();
  await rm(dataDir, { recursive: true, force: true });
});

test('a STOR held back while Dropbox is slow to answer is not a stall: 226, identical bytes', async () => {
  const data = makePool(12 * MiB + 3, 5);
  const before = (await service.box.faultCounts()).latency ?? 0;
  await service.box.setFaults({ rules: [{ kind: 'latency', latencyMs: SLOW_MS, routes: ['files/upload_session/start', 'files/upload_session/append_v2'], count: 2 }] });
  const { final } = await upload(c, 'STOR /slow-up.bin', data);
  const fired = ((await service.box.faultCounts()).latency ?? 0) - before;
  await service.box.setFaults({ rules: [] });
  assert.is(final.code, 226, final.text);
  assert.is(fired, 2, 'both slow calls happened');
  const got = await download(c, 'RETR /slow-up.bin');
  assert.is(got.final.code, 226, got.final.text);
  assert.is(sha256(got.data), sha256(data), 'identical bytes');
});

test('a RETR waiting for Dropbox\'s first bytes is not a stall: 226, identical bytes', async () => {
  const data = makePool(3 * MiB + 1, 6);
  assert.is((await upload(c, 'STOR /slow-down.bin', data)).final.code, 226);
  const before = (await service.box.faultCounts()).latency ?? 0;
  await service.box.setFaults({ rules: [{ kind: 'latency', latencyMs: SLOW_MS, routes: ['files/download'], count: 1 }] });
  const got = await download(c, 'RETR /slow-down.bin');
  const fired = ((await service.box.faultCounts()).latency ?? 0) - before;
  await service.box.setFaults({ rules: [] });
  assert.is(got.final.code, 226, got.final.text);
  assert.is(fired, 1, 'the download was slow');
  assert.is(sha256(got.data), sha256(data), 'identical bytes');
});

test('an upload paused and resumed again and again keeps one stall timer: no listeners pile up on its socket', async () => {
  // Each resume used to re-arm the timer with socket.setTimeout(ms, callback), which adds the
  // callback as one more 'timeout' listener: a 16 MiB STOR of a storm left hundreds on its data
  // socket, and Node warned once per socket (845 warnings in a storm of 2,000).
  const warnings: string[] = [];
  const onWarning = (w: Error): void => {
    if (w.name === 'MaxListenersExceededWarning') warnings.push(w.message);
  };
  process.on('warning', onWarning);
  try {
    const data = makePool(16 * MiB + 7, 8);
    const { final } = await upload(c, 'STOR /many-resumes.bin', data);
    assert.is(final.code, 226, final.text);
    const got = await download(c, 'RETR /many-resumes.bin');
    assert.is(sha256(got.data), sha256(data), 'identical bytes');
    await sleep(50); // warnings are emitted on the next tick
  } finally {
    process.off('warning', onWarning);
  }
  assert.equal(warnings, []);
});

test('a client that stops sending while the server reads still gets 426, and nothing is committed', async () => {
  const { port } = await c.pasv();
  const data = await openData(port);
  c.send('STOR /stopped.bin');
  assert.is((await c.read()).code, 150);
  data.write(Buffer.alloc(64 * 1024, 1));
  const started = Date.now();
  const reply = await c.read(10_000);
  assert.is(reply.code, 426, reply.text);
  assert.ok(Date.now() - started >= STALL_MS - 50, `aborted after ${Date.now() - started} ms`);
  data.destroy();
  await sleep(100);
  assert.is((await c.cmd('SIZE /stopped.bin')).code, 550, 'nothing committed');
});

test.run();
