// Fault injection on the wire: each kind fires where its rule says (route, account, count), is
// counted, and leaves the store consistent (a reset upload commits nothing; a damaged upload body is
// refused by its content_hash, or stored as it arrived without one).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { contentHash, type LocalBoxAccount } from '../../src/localbox/index.ts';
import { bytes, makeBox, type TestBox } from './helpers.ts';

let t: TestBox;
let alice: LocalBoxAccount;
let bob: LocalBoxAccount;
const data = bytes(2 * 1024 * 1024, 5);

test.before(async () => {
  t = await makeBox({ faults: { rules: [{ kind: 'latency', latencyMs: 1, routes: ['check/user'], count: 1 }] } });
  alice = await t.box.createAccount('alice');
  bob = await t.box.createAccount('bob');
  await t.sdk(alice).filesUpload({ path: '/f.bin', contents: data });
});
test.after(async () => {
  await t.cleanup();
});

async function rejects(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch {
    return;
  }
  assert.unreachable('expected a network error');
}

const check = (acc: LocalBoxAccount) => t.call('check/user', acc.accessToken, { json: { query: 'q' } });
const download = (acc: LocalBoxAccount) => t.call('files/download', acc.accessToken, { arg: { path: '/f.bin' } });

test('faults from the start spec fire and are counted; off otherwise', async () => {
  assert.is((await check(alice)).status, 200);
  assert.equal(await t.box.faultCounts(), { latency: 1 });
});

test('429 kinds: JSON retry_after + Retry-After, per account and route, count budget', async () => {
  await t.box.setFaults({
    rules: [
      { kind: 'too_many_requests', routes: ['check/user'], accounts: ['alice'], retryAfterSec: 3 },
      { kind: 'too_many_write_operations', routes: ['files/upload'], count: 1 },
    ],
  });
  const r = await check(alice);
  assert.is(r.status, 429);
  assert.is(r.headers.get('retry-after'), '3');
  assert.equal(await r.json(), { error_summary: 'too_many_requests/..', error: { reason: { '.tag': 'too_many_requests' }, retry_after: 3 } });
  assert.is((await check(bob)).status, 200);
  const up = () => t.call('files/upload', alice.accessToken, { arg: { path: '/w.txt', mode: 'overwrite' }, body: 'w', headers: { 'Content-Type': 'application/octet-stream' } });
  const first = await up();
  assert.is(first.status, 429);
  assert.equal(((await first.json()) as { error: { reason: unknown } }).error.reason, { '.tag': 'too_many_write_operations' });
  assert.is((await up()).status, 200);
  const counts = await t.box.faultCounts();
  assert.is(counts.too_many_requests, 1);
  assert.is(counts.too_many_write_operations, 1);
});

test('server_error status and latency', async () => {
  await t.box.setFaults({ rules: [{ kind: 'server_error', status: 502, routes: ['check/user'], count: 1 }, { kind: 'latency', latencyMs: 300, routes: ['files/get_metadata'] }] });
  assert.is((await check(alice)).status, 502);
  assert.is((await check(alice)).status, 200);
  const started = Date.now();
  const r = await t.call('files/get_metadata', alice.accessToken, { json: { path: '/f.bin' } });
  assert.is(r.status, 200);
  assert.ok(Date.now() - started >= 290);
  const counts = await t.box.faultCounts();
  assert.is(counts.server_error, 1);
  assert.ok(counts.latency! >= 2);
});

test('reset: mid-download, mid-upload (nothing committed), and on an RPC', async () => {
  await t.box.setFaults({
    rules: [
      { kind: 'reset', routes: ['files/download'], afterBytes: 100_000, count: 1 },
      { kind: 'reset', routes: ['files/upload'], afterBytes: 500_000, count: 1 },
      { kind: 'reset', routes: ['check/user'], count: 1 },
    ],
  });
  const r = await download(alice);
  assert.is(r.status, 200);
  let got = 0;
  let failed = false;
  try {
    for await (const c of r.body as unknown as AsyncIterable<Uint8Array>) got += c.length;
  } catch {
    failed = true;
  }
  assert.ok(failed, 'the body must end with an error');
  assert.ok(got <= 100_000, `got ${got}`);
  await rejects(t.call('files/upload', alice.accessToken, { arg: { path: '/reset.bin' }, body: data, headers: { 'Content-Type': 'application/octet-stream' } }).then((x) => x.text()));
  const md = await t.call('files/get_metadata', alice.accessToken, { json: { path: '/reset.bin' } });
  assert.is(md.status, 409);
  await md.text();
  await rejects(check(alice));
  assert.is((await check(alice)).status, 200);
  assert.is((await t.box.faultCounts()).reset, 3);
});

test('corrupt flips exactly one byte at the offset', async () => {
  await t.box.setFaults({ rules: [{ kind: 'corrupt', afterBytes: 12345, count: 1 }, { kind: 'corrupt', routes: ['files/download'], accounts: ['bob'] }] });
  const body = Buffer.from(await (await download(alice)).arrayBuffer());
  assert.is(body.length, data.length);
  const diffs = [...body.keys()].filter((i) => body[i] !== data[i]);
  assert.equal(diffs, [12345]);
  assert.ok(Buffer.from(await (await download(alice)).arrayBuffer()).equals(data));
  assert.is((await t.box.faultCounts()).corrupt, 1);
});

test('corrupt_upload flips one byte of the upload body on arrival: a content_hash refuses it, without one it is stored', async () => {
  await t.box.setFaults({ rules: [{ kind: 'corrupt_upload', routes: ['files/upload'], afterBytes: 777_777, count: 2 }] });
  const before = (await t.box.faultCounts()).corrupt_upload ?? 0;
  const upload = (path: string, arg: Record<string, unknown> = {}) =>
    t.call('files/upload', alice.accessToken, { arg: { path, mode: 'overwrite', ...arg }, body: data, headers: { 'Content-Type': 'application/octet-stream' } });
  // With the body's content_hash: 409 content_hash_mismatch, nothing committed.
  const refused = await upload('/damaged-hashed.bin', { content_hash: contentHash(data) });
  assert.is(refused.status, 409);
  assert.match(await refused.text(), /content_hash_mismatch/);
  const md = await t.call('files/get_metadata', alice.accessToken, { json: { path: '/damaged-hashed.bin' } });
  assert.is(md.status, 409);
  await md.text();
  // Without: the damaged bytes are what the box stores (as Dropbox would store what reached it).
  const stored = await upload('/damaged.bin');
  assert.is(stored.status, 200);
  assert.is(((await stored.json()) as { content_hash: string }).content_hash !== contentHash(data), true, 'the stored hash is not the sent body’s');
  const body = Buffer.from(await (await t.call('files/download', alice.accessToken, { arg: { path: '/damaged.bin' } })).arrayBuffer());
  assert.equal([...body.keys()].filter((i) => body[i] !== data[i]), [777_777]);
  // The budget is spent: the next upload arrives whole; downloads are never touched by it.
  const clean = await upload('/whole.bin', { content_hash: contentHash(data) });
  assert.is(clean.status, 200);
  await clean.text();
  assert.is((await t.box.faultCounts()).corrupt_upload, before + 2);
  await t.box.setFaults({ rules: [{ kind: 'corrupt_upload' }] });
  assert.ok(Buffer.from(await (await download(alice)).arrayBuffer()).equals(data), 'a download is not an upload body');
  await t.box.setFaults({ rules: [] });
});

test('concurrency cap per account answers 429 too_many_requests beyond it', async () => {
  await t.box.setFaults({ rules: [{ kind: 'latency', latencyMs: 300, routes: ['check/user'] }], concurrencyPerAccount: 2 });
  const results = await Promise.all([check(alice), check(alice), check(alice), check(bob)]);
  const statuses = results.map((r) => r.status).sort();
  assert.equal(statuses, [200, 200, 200, 429]);
  const limited = results.find((r) => r.status === 429)!;
  assert.is(((await limited.json()) as { error: { reason: { '.tag': string } } }).error.reason['.tag'], 'too_many_requests');
  assert.is((await t.box.faultCounts()).concurrency_limit, 1);
  await t.box.setFaults({ rules: [{ kind: 'server_error', probability: 0 }] });
  for (let i = 0; i < 5; i++) assert.is((await check(alice)).status, 200);
  const bad = await fetch(`${t.box.url}/admin/faults`, { method: 'POST', headers: { Authorization: `Bearer ${t.box.adminToken}` }, body: '{"rules":[{"kind":"nope"}]}' });
  assert.is(bad.status, 400);
  await bad.text();
  const noAuth = await fetch(`${t.box.url}/admin/faults`, { headers: { Authorization: `Bearer ${alice.accessToken}` } });
  assert.is(noAuth.status, 401);
  await noAuth.text();
});

test('skip: a rule lets that many matching requests pass before it applies', async () => {
  await t.box.setFaults({ rules: [{ kind: 'server_error', status: 503, routes: ['check/user'], skip: 2, count: 1 }] });
  assert.equal([(await check(alice)).status, (await check(alice)).status, (await check(alice)).status, (await check(alice)).status], [200, 200, 503, 200]);
  const bad = await fetch(`${t.box.url}/admin/faults`, { method: 'POST', headers: { Authorization: `Bearer ${t.box.adminToken}` }, body: JSON.stringify({ rules: [{ kind: 'latency', skip: -1 }] }) });
  assert.is(bad.status, 400);
});

test.run();
