// StreamedCall (src/transfer/streamed-call.ts) against the real local box over HTTP: a sink that
// pauses after every piece still gets the whole body in order; a non-2xx answer is classified and
// never reaches the sink; a sink that refuses the headers stops the call with its own failure; a
// reset mid-body ends the call with a retry, after the pieces already taken.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { createAgent } from '../../src/transfer/dropbox-http.ts';
import type { Failure } from '../../src/transfer/dropbox-http.ts';
import { StreamedCall } from '../../src/transfer/streamed-call.ts';
import type { BodySink, SinkAnswer } from '../../src/transfer/streamed-call.ts';
import { createTokenCell, writeToken } from '../../src/transfer/token-cell.ts';
import type { AccountWire } from '../../src/transfer/task-wire.ts';
import { KiB, MiB, contentOf, makePool, seed, sha256, startFixture } from './helpers.ts';
import type { Fixture } from './helpers.ts';

let fx: Fixture;
let account: AccountWire;
const agent = createAgent();
const pool = makePool(4 * MiB, 3);

test.before(async () => {
  fx = await startFixture({ workers: 1 });
  const tokenCell = createTokenCell();
  writeToken(tokenCell, fx.account.accessToken);
  account = { slot: 0, name: 'alice', apiUrl: fx.box.url, contentUrl: fx.box.url, tokenCell };
});
test.after(async () => {
  await agent.close();
  await fx.stop();
});

/** A sink that hashes what it gets and pauses the socket after each piece for `pauseMs`. */
function pausingSink(pauseMs: number, refuse: Failure | null = null) {
  const hash = createHash('sha256');
  const state = { bytes: 0, pieces: 0, started: 0, call: null as StreamedCall | null, sha: () => hash.digest('hex') };
  const sink: BodySink = {
    start() {
      state.started++;
      return refuse;
    },
    data(chunk: Buffer): SinkAnswer {
      hash.update(chunk);
      state.bytes += chunk.length;
      state.pieces++;
      setTimeout(() => state.call?.resume(), pauseMs);
      return false;
    },
  };
  return { sink, state };
}

test('a sink that pauses after every piece gets the whole body, in order', async () => {
  const data = contentOf(pool, 1, 3 * MiB + 17);
  await seed(fx.box, fx.account.accessToken, '/s/a.bin', data);
  const { sink, state } = pausingSink(1);
  const call = new StreamedCall({ dispatcher: agent, account, route: 'files/download', arg: { path: '/s/a.bin' } }, sink);
  state.call = call;
  const outcome = await call.done;
  assert.is(outcome.statusCode, 200);
  assert.is(outcome.failure, null);
  assert.is(state.bytes, data.length);
  assert.ok(state.pieces > 1, `pieces: ${state.pieces}`);
  assert.is(state.sha(), sha256(data));
});

test('a non-2xx answer is classified and never reaches the sink', async () => {
  const { sink, state } = pausingSink(0);
  const call = new StreamedCall({ dispatcher: agent, account, route: 'files/download', arg: { path: '/s/missing.bin' } }, sink);
  state.call = call;
  const outcome = await call.done;
  assert.is(outcome.statusCode, 409);
  assert.is(outcome.failure?.kind, 'fatal');
  assert.is(outcome.failure?.kind === 'fatal' && outcome.failure.code, 'DROPFTP_ERR_NOT_FOUND');
  assert.is(state.started, 0);
  assert.is(state.bytes, 0);
});

test("a sink that refuses the headers stops the call with its own failure", async () => {
  const data = contentOf(pool, 2, MiB);
  await seed(fx.box, fx.account.accessToken, '/s/b.bin', data);
  const refuse: Failure = { kind: 'fatal', code: 'DROPFTP_ERR_UPSTREAM', reason: 'refused by the test' };
  const { sink, state } = pausingSink(0, refuse);
  const call = new StreamedCall({ dispatcher: agent, account, route: 'files/download', arg: { path: '/s/b.bin' } }, sink);
  state.call = call;
  const outcome = await call.done;
  assert.is(outcome.failure, refuse);
  assert.is(state.started, 1);
  assert.is(state.bytes, 0);
});

test('a reset mid-body ends the call with a retry after the pieces already taken', async () => {
  const data = contentOf(pool, 3, 2 * MiB);
  await seed(fx.box, fx.account.accessToken, '/s/c.bin', data);
  await fx.box.setFaults({ rules: [{ kind: 'reset', routes: ['files/download'], afterBytes: 256 * KiB, count: 1 }] });
  const { sink, state } = pausingSink(0);
  const call = new StreamedCall({ dispatcher: agent, account, route: 'files/download', arg: { path: '/s/c.bin' } }, sink);
  state.call = call;
  const outcome = await call.done;
  await fx.box.setFaults({ rules: [] });
  assert.is(outcome.failure?.kind, 'retry');
  assert.ok(state.bytes < data.length, `took ${state.bytes} B`);
});

test.run();
