// The local box counts calls that arrive inside a Retry-After window it announced (GET
// /admin/calls/retry-after-windows, zeroed by POST /admin/calls/reset), so that benchmarks can check
// that a client's pacer starts none: calls on their way when the 429 left are told apart from later
// ones (WINDOW_GRACE_MS). Raw HTTP, one box child.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
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
}
const windows = (): Promise<Windows> => adminOf(t.box).adminCall<Windows>('GET', 'calls/retry-after-windows');

test('calls inside an announced Retry-After window are counted, late ones apart; a reset zeroes them', async () => {
  const acc = await t.box.createAccount('w');
  const call = async (): Promise<number> => {
    const r = await t.call('files/get_metadata', acc.accessToken, { json: { path: '/nothing' } });
    await r.text();
    return r.status;
  };
  assert.equal(await windows(), { windows: 0, callsInside: 0, callsInsideLate: 0 });
  assert.is(await call(), 409, 'the burst of one admits the first call');
  assert.is(await call(), 429, 'the second opens a window');
  assert.is((await windows()).windows, 1);
  await sleep(WINDOW_GRACE_MS + 50);
  assert.is(await call(), 429, 'inside the window, after the grace');
  const w = await windows();
  assert.is(w.callsInside, 1);
  assert.is(w.callsInsideLate, 1);
  assert.is(w.windows, 2, 'its refusal announced a window of its own');
  await adminOf(t.box).adminCall('POST', 'calls/reset');
  assert.equal(await windows(), { windows: 0, callsInside: 0, callsInsideLate: 0 });
});

test.run();
