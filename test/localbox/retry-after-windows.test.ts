// The local box counts calls that arrive inside a Retry-After window it announced (GET
// /admin/calls/retry-after-windows, zeroed by POST /admin/calls/reset), so that benchmarks can check
// that a client's pacer starts none: calls on their way when the 429 left are told apart from later
// ones (WINDOW_GRACE_MS), and a call that says when its client started it (X-Dropftp-Call-Start,
// as dropftp sends it) is judged by that too. Raw HTTP, one box child.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CALL_START_HEADER } from '../../src/dropbox/call-stamp.ts';
import { adminOf } from '../../src/localbox/index.ts';
import { WINDOW_GRACE_MS } from '../../src/localbox/limits.ts';
import { makeBox, type TestBox } from './helpers.ts';

let t: TestBox;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test.before(async () => {
  t = await makeBox({ limits: { rateLimit: '1:1' } });
});
test.after(async () => {
  await t.cleanup();
});

interface Windows {
  windows: number;
  callsInside: number;
  callsInsideLate: number;
  startedInside: number;
  startedInsideLate: number;
  startedInsideMaxMs: number;
}
const NONE: Windows = { windows: 0, callsInside: 0, callsInsideLate: 0, startedInside: 0, startedInsideLate: 0, startedInsideMaxMs: 0 };
const windows = (): Promise<Windows> => adminOf(t.box).adminCall<Windows>('GET', 'calls/retry-after-windows');

test('calls inside an announced Retry-After window are counted, late ones apart; a reset zeroes them', async () => {
  const acc = await t.box.createAccount('w');
  const call = async (): Promise<number> => {
    const r = await t.call('files/get_metadata', acc.accessToken, { json: { path: '/nothing' } });
    await r.text();
    return r.status;
  };
  assert.equal(await windows(), NONE);
  assert.is(await call(), 409, 'the burst of one admits the first call');
  assert.is(await call(), 429, 'the second opens a window');
  assert.is((await windows()).windows, 1);
  await sleep(WINDOW_GRACE_MS + 50);
  assert.is(await call(), 429, 'inside the window, after the grace');
  const w = await windows();
  assert.is(w.callsInside, 1);
  assert.is(w.callsInsideLate, 1);
  assert.is(w.windows, 2, 'its refusal announced a window of its own');
  assert.is(w.startedInside, 0, 'no call said when it started');
  await adminOf(t.box).adminCall('POST', 'calls/reset');
  assert.equal(await windows(), NONE);
});

test('a call stamped before the window opened arrived late; one stamped after it was started inside', async () => {
  const acc = await t.box.createAccount('s');
  const call = async (startedAt: number): Promise<number> => {
    const r = await t.call('files/get_metadata', acc.accessToken, { json: { path: '/nothing' }, headers: { [CALL_START_HEADER]: startedAt.toFixed(1) } });
    await r.text();
    return r.status;
  };
  const now = (): number => performance.timeOrigin + performance.now();
  await adminOf(t.box).adminCall('POST', 'calls/reset');
  assert.is(await call(now()), 409);
  const opened = now();
  assert.is(await call(now()), 429, 'opens a window');
  await sleep(WINDOW_GRACE_MS + 50);
  // Started a second before the window opened (it was on its way): arrived late, not started inside.
  assert.is(await call(opened - 1000), 429);
  let w = await windows();
  assert.is(w.callsInsideLate, 1);
  assert.is(w.startedInside, 0);
  // Started now, well after the 429 left: started inside, late.
  assert.is(await call(now()), 429);
  w = await windows();
  assert.is(w.startedInside, 1);
  assert.is(w.startedInsideLate, 1);
  assert.ok(w.startedInsideMaxMs >= WINDOW_GRACE_MS, `started ${w.startedInsideMaxMs} ms after`);
  // A stamp that is not a number is ignored.
  const r = await t.call('files/get_metadata', acc.accessToken, { json: { path: '/nothing' }, headers: { [CALL_START_HEADER]: 'soon' } });
  await r.text();
  assert.is(r.status, 429);
  assert.is((await windows()).startedInside, 1);
});

test.run();
