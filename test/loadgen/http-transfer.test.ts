// The load generator's HTTP client (benchmarks/loadgen/http-transfer.ts), the one the storm uses for
// the local box straight over HTTP: against a real local box, an upload and a download byte-exact
// (a non-ASCII path included), and every way a response can go wrong failing the transfer instead of
// counting it: an error status, a body reset midway, a body shorter than the file.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { httpTransfer } from '../../benchmarks/loadgen/http-transfer.ts';
import { TransferMeter, nowMs } from '../../benchmarks/loadgen/meter.ts';
import { slice } from '../../benchmarks/loadgen/pattern.ts';
import type { LocalBoxAccount } from '../../src/localbox/index.ts';
import { makeBox, type TestBox } from '../localbox/helpers.ts';

let t: TestBox;
let acc: LocalBoxAccount;

test.before(async () => {
  t = await makeBox();
  acc = await t.box.createAccount('loadgen');
});
test.after(async () => {
  await t.cleanup();
});

const SIZE = 3 * 1024 * 1024 + 123;
const target = (): { url: string; accessToken: string } => ({ url: t.box.url, accessToken: acc.accessToken });
const meterOf = (op: 'RETR' | 'STOR'): TransferMeter => new TransferMeter(0, op, SIZE, nowMs(), 0);

test('STOR then RETR through the box: the stored bytes are the session pattern, every byte metered', async () => {
  for (const path of ['up-7.bin', 'dossier été/up-7.bin']) {
    const up = meterOf('STOR');
    await httpTransfer(target(), { op: 'STOR', path, sizeBytes: SIZE, sessionId: 7, stallTimeoutMs: 10_000 }, up);
    assert.is(up.record.bytes, SIZE, `${path}: upload metered`);
    const r = await t.call('files/download', acc.accessToken, { arg: { path: `/${path}` } });
    assert.is(r.status, 200);
    assert.ok(Buffer.from(await r.arrayBuffer()).equals(Buffer.from(slice(7, 0, SIZE))), `${path}: stored bytes`);
    const down = meterOf('RETR');
    await httpTransfer(target(), { op: 'RETR', path, sizeBytes: SIZE, sessionId: 0, stallTimeoutMs: 10_000 }, down);
    assert.is(down.record.bytes, SIZE, `${path}: download metered`);
  }
});

test('a missing file: the status and the error body, nothing counted', async () => {
  const m = meterOf('RETR');
  const err = await httpTransfer(target(), { op: 'RETR', path: 'nope.bin', sizeBytes: SIZE, sessionId: 0, stallTimeoutMs: 10_000 }, m).then(
    () => null,
    (e: Error) => e,
  );
  assert.ok(err && /HTTP files\/download: 409 .*not_found/.test(err.message), String(err));
  assert.is(m.record.bytes, 0);
});

test('a download reset midway, or shorter than the file, fails the transfer', async () => {
  await httpTransfer(target(), { op: 'STOR', path: 'src.bin', sizeBytes: SIZE, sessionId: 3, stallTimeoutMs: 10_000 }, meterOf('STOR'));
  const cases = [
    { rule: { kind: 'reset', afterBytes: 1_000_000, routes: ['files/download'], count: 1 }, expect: /ECONNRESET|closed before the response ended|ended after/ },
    { rule: { kind: 'short_body', bytes: 1000, routes: ['files/download'], count: 1 }, expect: new RegExp(`download: ${SIZE - 1000} bytes, expected ${SIZE}`) },
  ];
  for (const c of cases) {
    await t.box.setFaults({ rules: [c.rule] } as Parameters<typeof t.box.setFaults>[0]);
    const err = await httpTransfer(target(), { op: 'RETR', path: 'src.bin', sizeBytes: SIZE, sessionId: 0, stallTimeoutMs: 10_000 }, meterOf('RETR')).then(
      () => null,
      (e: Error) => e,
    );
    assert.ok(err && c.expect.test(err.message), `${c.rule.kind}: ${String(err)}`);
  }
  await t.box.setFaults({ rules: [] });
  const m = meterOf('RETR');
  await httpTransfer(target(), { op: 'RETR', path: 'src.bin', sizeBytes: SIZE, sessionId: 0, stallTimeoutMs: 10_000 }, m);
  assert.is(m.record.bytes, SIZE, 'the next download whole');
});

test.run();
