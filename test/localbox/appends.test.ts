// Storage that costs what it carries (issue 15): a sequential session's appends write each byte
// once where it stays (no copy of a partial block), so the box writes little more than the upload;
// bytes and content_hash are exact across failed appends, restarts, and a crash between a block's
// database commit and its move into blocks/; a session past its 7 days costs nothing after a restart.
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { contentHash, startLocalBox, type LocalBoxAccount } from '../../src/localbox/index.ts';
import { bytes, makeBox, wrap, type TestBox } from './helpers.ts';

const MiB = 1024 * 1024;
let t: TestBox;
let acc: LocalBoxAccount;

test.before(async () => {
  t = await makeBox({}, { gcIntervalMs: 0 });
  acc = await t.box.createAccount('appender');
});
test.after(async () => {
  await t.cleanup();
});

/** Bytes the box process handed to write(2) and friends so far (files, sockets, database). */
function writtenBytes(pid: number): number {
  const m = /^wchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
  return Number(m![1]);
}

const octet = { 'Content-Type': 'application/octet-stream' };

async function start(): Promise<string> {
  const r = await t.call('files/upload_session/start', acc.accessToken, { arg: {}, body: '', headers: octet });
  assert.is(r.status, 200);
  return ((await r.json()) as { session_id: string }).session_id;
}

async function append(id: string, offset: number, data: Buffer, extra: Record<string, unknown> = {}): Promise<Response> {
  return t.call('files/upload_session/append_v2', acc.accessToken, { arg: { cursor: { session_id: id, offset }, ...extra }, body: data, headers: octet });
}

async function finish(id: string, offset: number, path: string): Promise<{ size: number; content_hash: string }> {
  const r = await t.call('files/upload_session/finish', acc.accessToken, { arg: { cursor: { session_id: id, offset }, commit: { path, mode: 'overwrite' } }, body: '', headers: octet });
  assert.is(r.status, 200, await r.clone().text());
  return (await r.json()) as { size: number; content_hash: string };
}

async function download(path: string): Promise<Buffer> {
  const r = await t.call('files/download', acc.accessToken, { arg: { path } });
  assert.is(r.status, 200);
  return Buffer.from(await r.arrayBuffer());
}

test('48 MiB in 1 MiB appends: byte-exact, right content_hash, the box writes <= 1.05x the upload', async () => {
  const data = bytes(48 * MiB + 12345, 3);
  const id = await start();
  const before = writtenBytes(t.box.pid);
  let offset = 0;
  while (offset < data.length) {
    const n = Math.min(MiB, data.length - offset);
    const r = await append(id, offset, data.subarray(offset, offset + n));
    assert.is(r.status, 200);
    await r.text();
    offset += n;
  }
  const meta = await finish(id, offset, '/big.bin');
  const written = writtenBytes(t.box.pid) - before;
  assert.ok(written <= 1.05 * data.length, `wrote ${(written / data.length).toFixed(3)}x the upload`);
  assert.is(meta.size, data.length);
  assert.is(meta.content_hash, contentHash(data));
  assert.ok((await download('/big.bin')).equals(data));
  assert.equal(readdirSync(join(t.dir, 'partial')), [], 'no partial block left after the commit');
});

test('failed appends (content_hash mismatch, reset mid-body) leave the session as it was; unaligned sizes', async () => {
  const data = bytes(13 * MiB + 777, 4);
  const id = await start();
  const cuts = [0, 100_000, 3 * MiB, 4 * MiB + 1, 4 * MiB + 2, 9 * MiB - 5, 12 * MiB, data.length];
  for (let i = 0; i + 1 < cuts.length; i++) {
    const part = data.subarray(cuts[i], cuts[i + 1]);
    // a wrong content_hash: refused, nothing changes (the bytes it wrote past the end are cut later)
    const bad = await append(id, cuts[i]!, part, { content_hash: contentHash(Buffer.from('other')) });
    assert.is(bad.status, 409);
    assert.is(((await bad.json()) as { error: { '.tag': string } }).error['.tag'], 'content_hash_mismatch');
    if (i === 4) {
      await t.box.setFaults({ rules: [{ kind: 'reset', routes: ['files/upload_session/append_v2'], afterBytes: 1000, count: 1 }] });
      await append(id, cuts[i]!, part).then((r) => r.text()).then(
        () => assert.unreachable('expected a reset'),
        () => undefined,
      );
    }
    const ok = await append(id, cuts[i]!, part, { content_hash: contentHash(part), close: i + 2 === cuts.length });
    assert.is(ok.status, 200, `append ${i}`);
    await ok.text();
  }
  const r = await t.call('files/upload_session/finish_batch_v2', acc.accessToken, { json: { entries: [{ cursor: { session_id: id, offset: data.length }, commit: { path: '/cuts.bin' } }] } });
  const entry = ((await r.json()) as { entries: { '.tag': string; content_hash: string }[] }).entries[0]!;
  assert.is(entry['.tag'], 'success');
  assert.is(entry.content_hash, contentHash(data));
  assert.ok((await download('/cuts.bin')).equals(data));
});

test('a restart between appends (hash state lost) and a crash between a seal and its move both end byte-exact', async () => {
  const data = bytes(10 * MiB + 99, 5);
  const id = await start();
  let r = await append(id, 0, data.subarray(0, 6 * MiB + 1)); // block 0 sealed, block 1 partial (2 MiB + 1)
  assert.is(r.status, 200);
  await r.text();
  await t.box.close();
  t = wrap(await startLocalBox({ dataDir: t.dir }, { gcIntervalMs: 0 }), t.dir);
  r = await append(id, 6 * MiB + 1, data.subarray(6 * MiB + 1, 9 * MiB)); // block 1 sealed, block 2 partial
  assert.is(r.status, 200);
  await r.text();
  // a crash after block 1's row was committed but before its file moved: put the file back as a partial
  await t.box.close();
  const hash1 = (await import('node:crypto')).createHash('sha256').update(data.subarray(4 * MiB, 8 * MiB)).digest('hex');
  renameSync(join(t.dir, 'blocks', hash1.slice(0, 2), hash1), join(t.dir, 'partial', `${id.slice(id.indexOf(':') + 1)}-1`));
  t = wrap(await startLocalBox({ dataDir: t.dir }, { gcIntervalMs: 0 }), t.dir);
  r = await append(id, 9 * MiB, data.subarray(9 * MiB), { close: true });
  assert.is(r.status, 200);
  await r.text();
  const meta = await finish(id, data.length, '/restarted.bin');
  assert.is(meta.content_hash, contentHash(data));
  assert.ok((await download('/restarted.bin')).equals(data));
  // an abandoned partial (no row) is deleted at start-up
  const id2 = await start();
  r = await append(id2, 0, data.subarray(0, 1000));
  await r.text();
  await t.box.close();
  renameSync(join(t.dir, 'partial', `${id2.slice(id2.indexOf(':') + 1)}-0`), join(t.dir, 'partial', 'orphan-0'));
  t = wrap(await startLocalBox({ dataDir: t.dir }, { gcIntervalMs: 0 }), t.dir);
  assert.not.ok(readdirSync(join(t.dir, 'partial')).includes('orphan-0'));
});

test('a session older than 7 days is expired at start-up: its partial block and its blocks go, an append to it answers not_found; a younger one stays', async () => {
  const data = bytes(6 * MiB + 1, 13);
  const old = await start();
  let r = await append(old, 0, data); // block 0 sealed, block 1 partial (2 MiB + 1)
  assert.is(r.status, 200);
  await r.text();
  const young = await start();
  r = await append(young, 0, data.subarray(0, 1000));
  assert.is(r.status, 200);
  await r.text();
  const block0 = createHash('sha256').update(data.subarray(0, 4 * MiB)).digest('hex');
  const blockFile = join(t.dir, 'blocks', block0.slice(0, 2), block0);
  const partialOf = (id: string) => `${id.slice(id.indexOf(':') + 1)}-`;
  assert.ok(existsSync(blockFile), 'the sealed block is stored');
  assert.ok(readdirSync(join(t.dir, 'partial')).some((n) => n.startsWith(partialOf(old))), 'the partial block is stored');
  await t.box.close();
  // Eight days pass for the first session only.
  const db = new Database(join(t.dir, 'localbox.sqlite'));
  try {
    assert.is(db.prepare('UPDATE sessions SET created_ms = created_ms - ? WHERE id = ?').run(8 * 24 * 3600 * 1000, old).changes, 1);
  } finally {
    db.close();
  }
  t = wrap(await startLocalBox({ dataDir: t.dir }, { gcIntervalMs: 0 }), t.dir);
  assert.not.ok(existsSync(blockFile), 'its sealed block is collected');
  assert.not.ok(readdirSync(join(t.dir, 'partial')).some((n) => n.startsWith(partialOf(old))), 'its partial block is removed');
  r = await append(old, data.length, Buffer.from('more'));
  assert.is(r.status, 409);
  assert.match(await r.text(), /not_found/);
  r = await append(young, 1000, data.subarray(1000, 2000), { close: true });
  assert.is(r.status, 200, 'the younger session goes on');
  await r.text();
  const meta = await finish(young, 2000, '/young.bin');
  assert.is(meta.content_hash, contentHash(data.subarray(0, 2000)));
});

test('a finish while an append of the same session is in flight is refused (lookup_failed: incorrect_offset); the session stays whole', async () => {
  const data = bytes(6 * MiB, 6);
  const id = await start();
  let r = await append(id, 0, data.subarray(0, 5 * MiB)); // block 1 is a partial of 1 MiB
  assert.is(r.status, 200);
  await r.text();
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      controller.enqueue(data.subarray(5 * MiB, 5 * MiB + 300_000));
      await held;
      controller.enqueue(data.subarray(5 * MiB + 300_000));
      controller.close();
    },
  });
  const inFlight = append(id, 5 * MiB, body as unknown as Buffer);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const early = await t.call('files/upload_session/finish', acc.accessToken, { arg: { cursor: { session_id: id, offset: 5 * MiB }, commit: { path: '/raced.bin' } }, body: '', headers: octet });
  assert.is(early.status, 409);
  assert.is(((await early.json()) as { error: { '.tag': string } }).error['.tag'], 'lookup_failed');
  release();
  r = await inFlight;
  assert.is(r.status, 200);
  await r.text();
  const meta = await finish(id, data.length, '/raced.bin');
  assert.is(meta.content_hash, contentHash(data));
  assert.ok((await download('/raced.bin')).equals(data));
});

test.run();
