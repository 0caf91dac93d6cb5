// GET /admin/calls and POST /admin/calls/reset: every API call is counted by route and status
// (refused ones too), limit refusals by kind and account, body bytes both ways; admin only.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { CallsSnapshot } from '../../src/localbox/call-stats.ts';
import type { LocalBoxAccount } from '../../src/localbox/index.ts';
import { bytes, makeBox, type TestBox } from './helpers.ts';

let t: TestBox;
let alice: LocalBoxAccount;
let bob: LocalBoxAccount;
const data = bytes(300_000, 9);

test.before(async () => {
  t = await makeBox();
  alice = await t.box.createAccount('alice');
  bob = await t.box.createAccount('bob');
});
test.after(async () => {
  await t.cleanup();
});

const calls = (): Promise<CallsSnapshot> => t.admin('GET', 'calls');

test('counts calls by route and status, bytes both ways, limits by account; reset zeroes', async () => {
  await t.admin('POST', 'calls/reset');
  const up = await t.call('files/upload', alice.accessToken, { arg: { path: '/a.bin' }, body: data, headers: { 'Content-Type': 'application/octet-stream' } });
  assert.is(up.status, 200);
  await up.text();
  const full = await t.call('files/download', alice.accessToken, { arg: { path: '/a.bin' } });
  assert.is((await full.arrayBuffer()).byteLength, data.length);
  const part = await t.call('files/download', alice.accessToken, { arg: { path: '/a.bin' }, headers: { Range: 'bytes=0-99' } });
  assert.is(part.status, 206);
  assert.is((await part.arrayBuffer()).byteLength, 100);
  const missing = await t.call('files/get_metadata', bob.accessToken, { json: { path: '/nope' } });
  assert.is(missing.status, 409);
  await missing.text();
  await t.box.setFaults({ rules: [{ kind: 'too_many_requests', routes: ['files/get_metadata'], accounts: ['bob'], count: 2 }, { kind: 'too_many_write_operations', routes: ['files/create_folder_v2'], count: 1 }] });
  for (let i = 0; i < 3; i++) await (await t.call('files/get_metadata', bob.accessToken, { json: { path: '/nope' } })).text();
  const mk = await t.call('files/create_folder_v2', alice.accessToken, { json: { path: '/d' } });
  assert.is(mk.status, 429);
  await mk.text();
  await t.box.setFaults({ rules: [] });
  const bad = await t.call('files/get_metadata', 'not-a-token', { json: { path: '/a.bin' } });
  assert.is(bad.status, 401);
  await bad.text();

  const s = await calls();
  assert.equal(s.routes['files/upload'], { calls: 1, status: { '200': 1 } });
  assert.equal(s.routes['files/download'], { calls: 2, status: { '200': 1, '206': 1 } });
  assert.equal(s.routes['files/get_metadata'], { calls: 5, status: { '409': 2, '429': 2, '401': 1 } });
  assert.equal(s.routes['files/create_folder_v2'], { calls: 1, status: { '429': 1 } });
  assert.is(s.limits.tooManyRequests, 2);
  assert.is(s.limits.tooManyWriteOperations, 1);
  assert.equal(s.limits.byAccount.alice, { calls: 4, tooManyRequests: 0, tooManyWriteOperations: 1 });
  assert.equal(s.limits.byAccount.bob, { calls: 4, tooManyRequests: 2, tooManyWriteOperations: 0 });
  assert.equal(s.bytes, { served: data.length + 100, received: data.length });
  assert.is(Object.keys(s.routes).filter((r) => r.startsWith('admin')).length, 0, 'admin calls are not counted');

  const zero = await t.admin<CallsSnapshot>('POST', 'calls/reset');
  assert.equal(zero, { routes: {}, limits: { tooManyRequests: 0, tooManyWriteOperations: 0, byAccount: {} }, bytes: { served: 0, received: 0 } });
  assert.equal(await calls(), zero);
});

test('a call whose connection drops before a reply counts as "reset"', async () => {
  await t.admin('POST', 'calls/reset');
  await t.box.setFaults({ rules: [{ kind: 'reset', routes: ['check/user'], count: 1 }] });
  try {
    await (await t.call('check/user', alice.accessToken, { json: { query: 'q' } })).text();
    assert.unreachable('expected a reset');
  } catch (err) {
    if (err instanceof assert.Assertion) throw err;
  }
  await t.box.setFaults({ rules: [] });
  const s = await calls();
  assert.equal(s.routes['check/user'], { calls: 1, status: { reset: 1 } });
});

test('user tokens cannot read or reset the counters', async () => {
  for (const [method, path] of [['GET', 'calls'], ['POST', 'calls/reset']] as const) {
    const r = await fetch(`${t.box.url}/admin/${path}`, { method, headers: { Authorization: `Bearer ${alice.accessToken}` } });
    assert.is(r.status, 401);
    await r.text();
  }
});

test.run();
