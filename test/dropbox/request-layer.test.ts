// The request layer against a tiny real HTTP server that answers what the test scripts (statuses,
// Retry-After values and bodies the local box never sends): each classification and what the layer
// does with it (retry, wait, refresh, throw which DROPFTP_ERR_*), capped Retry-After values, the
// pacing hook (one admit and one report per attempt), and an abort during a wait.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Agent, fetch } from 'undici';
import { DropftpError } from '../../src/errors.ts';
import { DropboxCallError, DropboxRequests, type RequestLayerOptions } from '../../src/dropbox/request.ts';
import { classifyAnswer, classifyRouteError } from '../../src/dropbox/classify.ts';
import { DropboxRpc } from '../../src/dropbox/rpc.ts';
import { recordingPacer, scriptedServer, TOO_MANY, type Scripted } from './helpers.ts';

let server: Scripted;
let agent: Agent;
const warnings: string[] = [];

test.before(async () => {
  server = await scriptedServer();
  agent = new Agent({ connections: 4 });
});
test.after(async () => {
  await agent.close();
  await server.close();
});

function layer(options: Partial<RequestLayerOptions> = {}): DropboxRequests {
  return new DropboxRequests({
    account: 'acc',
    tokens: { get: async () => 'T1', expired: async () => 'T2' },
    backoffBaseMs: 5,
    backoffMaxMs: 20,
    maxRetryAfterMs: 300,
    warn: (m) => warnings.push(m),
    ...options,
  });
}

/** One call of `route` through the layer; resolves to the parsed JSON or rejects with the layer's error. */
async function call(requests: DropboxRequests, route = 'files/get_metadata', idempotent = true, signal?: AbortSignal): Promise<unknown> {
  const res = await requests.run({ route, idempotent, signal: signal ?? null }, (authorization, s) =>
    fetch(`${server.url}/2/${route}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
      body: '{}',
      dispatcher: agent,
      ...(s ? { signal: s } : {}),
    }),
  );
  return res.json();
}

/** `p`, or a failure when it takes longer than `ms` (an uncapped wait would hang the file). */
async function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`not done within ${ms} ms`)), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function failure(p: Promise<unknown>): Promise<DropboxCallError> {
  try {
    await p;
  } catch (err) {
    assert.instance(err, DropboxCallError);
    assert.instance(err, DropftpError);
    return err as DropboxCallError;
  }
  throw new Error('expected the call to fail');
}

test('ok: the JSON answer comes back; one admit, one ok report', async () => {
  server.script({ status: 200, body: { name: 'a' } });
  const pacer = recordingPacer();
  assert.equal(await call(layer({ pacer })), { name: 'a' });
  assert.is(server.seen[0]!.authorization, 'Bearer T1');
  assert.is(pacer.admits, 1);
  assert.equal(pacer.reports, [{ kind: 'ok' }]);
});

test('409 route errors: fatal with their code and tags, sent once', async () => {
  server.script({ status: 409, body: { error_summary: 'path/not_found/..', error: { '.tag': 'path', path: { '.tag': 'not_found' } } } });
  let err = await failure(call(layer()));
  assert.is(err.code, 'DROPFTP_ERR_NOT_FOUND');
  assert.equal([...err.tags], ['path', 'not_found']);
  assert.is(err.status, 409);
  assert.is(server.seen.length, 1);
  server.script({ status: 409, body: { error_summary: 'to/conflict/file/', error: { '.tag': 'to', to: { '.tag': 'conflict', conflict: { '.tag': 'file' } } } } });
  assert.is((await failure(call(layer(), 'files/move_v2', false))).code, 'DROPFTP_ERR_EXISTS');
  server.script({ status: 409, body: { error_summary: 'reset/', error: { '.tag': 'reset' } } });
  err = await failure(call(layer(), 'files/list_folder/continue'));
  assert.is(err.code, 'DROPFTP_ERR_UPSTREAM');
  assert.ok(err.tags.includes('reset'));
});

test('429 too_many_requests then success is invisible to the caller; Retry-After honoured; pacer told "throttled"', async () => {
  server.script({ status: 429, headers: { 'retry-after': '0.2' }, body: TOO_MANY('too_many_requests', 0.2) }, { status: 200, body: { n: 1 } });
  const pacer = recordingPacer();
  const started = performance.now();
  assert.equal(await call(layer({ pacer })), { n: 1 });
  assert.ok(performance.now() - started >= 190, 'waited the 200 ms asked for');
  assert.is(server.seen.length, 2);
  assert.equal(pacer.reports, [{ kind: 'throttled', retryAfterMs: 200 }, { kind: 'ok' }]);
  assert.is(pacer.admits, 2, 'every attempt is admitted by the pacer');
});

test('429 too_many_write_operations (and inside a 409 or a batch entry) is write-lock; a create is retried', async () => {
  server.script({ status: 429, headers: { 'retry-after': '0' }, body: TOO_MANY('too_many_write_operations') }, { status: 200, body: { metadata: {} } });
  const pacer = recordingPacer();
  assert.equal(await call(layer({ pacer }), 'files/create_folder_v2', false), { metadata: {} });
  assert.equal(pacer.reports[0], { kind: 'write-lock', retryAfterMs: 0 });
  server.script({ status: 409, body: { error_summary: 'too_many_write_operations/', error: { '.tag': 'too_many_write_operations' } } }, { status: 200, body: {} });
  await call(layer({ pacer }), 'files/delete_v2', false);
  assert.is(server.seen.length, 2);
  const entry = classifyRouteError({ '.tag': 'too_many_write_operations' });
  assert.is(entry.kind, 'write-lock');
  assert.is(classifyRouteError('too_many_write_operations').kind, 'write-lock', 'compact union form');
  assert.is(classifyRouteError({ '.tag': 'lookup_failed', lookup_failed: { '.tag': 'incorrect_offset', correct_offset: 7 } }).kind, 'fatal');
  const offset = classifyRouteError({ '.tag': 'lookup_failed', lookup_failed: { '.tag': 'incorrect_offset', correct_offset: 7 } });
  assert.is(offset.kind === 'fatal' && offset.correctOffset, 7);
});

test('a Retry-After beyond the cap, negative or non-numeric is capped (and logged); the call still completes', async () => {
  for (const [header, json] of [['100000', 100000], ['-5', -5], ['soon', 'soon'], [undefined, '1e400']] as const) {
    warnings.length = 0;
    server.script({ status: 429, headers: header === undefined ? {} : { 'retry-after': header }, body: TOO_MANY('too_many_requests', json) }, { status: 200, body: { done: true } });
    const pacer = recordingPacer();
    const started = performance.now();
    assert.equal(await within(3000, call(layer({ pacer }))), { done: true }, `Retry-After ${header}`);
    const ms = performance.now() - started;
    assert.ok(ms >= 290 && ms < 2000, `Retry-After ${header}: waited ${ms.toFixed(0)} ms (cap 300)`);
    assert.equal(pacer.reports[0], { kind: 'throttled', retryAfterMs: 300 });
    assert.is(warnings.length, 1, `logged: ${warnings.join(' | ')}`);
    assert.match(warnings[0]!, /acc files\/get_metadata/);
  }
  // Both sources valid: the larger one; an HTTP-date is a delay too.
  const c = classifyAnswer({ status: 429, header: () => new Date(Date.now() + 60_000).toUTCString(), text: JSON.stringify(TOO_MANY('too_many_requests', 2)) }, 300_000);
  assert.ok(c.kind === 'throttled' && c.retryAfterMs > 55_000 && c.retryAfterMs <= 60_000 && c.notice === null, JSON.stringify(c));
  const none = classifyAnswer({ status: 429, header: () => null, text: 'slow down' });
  assert.ok(none.kind === 'throttled' && none.retryAfterMs === 1000, 'a text 429 without a delay is too_many_requests, 1 s');
});

test('429s without end: DROPFTP_ERR_RATE_LIMITED after maxThrottledAttempts', async () => {
  server.script();
  server.fallback = { status: 429, headers: { 'retry-after': '0' }, body: TOO_MANY('too_many_requests', 0) };
  try {
    const err = await failure(call(layer({ maxThrottledAttempts: 3 })));
    assert.is(err.code, 'DROPFTP_ERR_RATE_LIMITED');
    assert.is(server.seen.length, 3);
  } finally {
    server.fallback = { status: 200, body: { ok: true } };
  }
});

test('5xx and resets: an idempotent call is retried, a create is not (its effect is unknown)', async () => {
  server.script({ status: 503, body: 'busy' }, { reset: true }, { status: 200, body: { ok: 1 } });
  const pacer = recordingPacer();
  assert.equal(await call(layer({ pacer })), { ok: 1 });
  assert.equal(pacer.reports, [{ kind: 'failed' }, { kind: 'failed' }, { kind: 'ok' }]);
  server.script({ status: 500, body: 'oops' });
  const err = await failure(call(layer(), 'files/create_folder_v2', false));
  assert.is(err.code, 'DROPFTP_ERR_UPSTREAM');
  assert.is(server.seen.length, 1);
  server.script();
  server.fallback = { status: 502, body: 'bad gateway' };
  try {
    assert.is((await failure(call(layer({ maxAttempts: 3 })))).code, 'DROPFTP_ERR_UPSTREAM');
    assert.is(server.seen.length, 3);
  } finally {
    server.fallback = { status: 200, body: { ok: true } };
  }
});

test('401 expired_access_token: one refresh, the call is sent again with the new token', async () => {
  server.script({ status: 401, body: { error_summary: 'expired_access_token/', error: { '.tag': 'expired_access_token' } } }, { status: 200, body: { ok: 2 } });
  let refreshes = 0;
  const requests = layer({ tokens: { get: async () => 'OLD', expired: async () => (refreshes++, 'NEW') } });
  assert.equal(await call(requests), { ok: 2 });
  assert.equal(server.seen.map((s) => s.authorization), ['Bearer OLD', 'Bearer NEW']);
  assert.is(refreshes, 1);
  // A 401 after the refresh, a fixed token, or a tag no token cures: DROPFTP_ERR_UPSTREAM_AUTH.
  const expired = { status: 401, body: { error_summary: 'expired_access_token/', error: { '.tag': 'expired_access_token' } } };
  server.script(expired, expired);
  assert.is((await failure(call(requests))).code, 'DROPFTP_ERR_UPSTREAM_AUTH');
  assert.is(server.seen.length, 2);
  server.script(expired);
  assert.is((await failure(call(layer({ tokens: { get: async () => 'F', expired: async () => 'F' } })))).code, 'DROPFTP_ERR_UPSTREAM_AUTH');
  assert.is(server.seen.length, 1);
  server.script({ status: 401, body: { error_summary: 'missing_scope/', error: { '.tag': 'missing_scope', required_scope: 'files.content.write' } } });
  assert.is((await failure(call(requests))).code, 'DROPFTP_ERR_UPSTREAM_AUTH');
  assert.is(server.seen.length, 1);
});

test('a malformed answer is a clear DROPFTP_ERR_UPSTREAM_MALFORMED, not a crash', async () => {
  for (const reply of [
    { status: 200, body: '{"entries": [' },
    { status: 200, body: '<html>proxy</html>' },
    { status: 409, body: 'not json at all' },
    { status: 409, body: '{"error_summary": "x"}' },
  ]) {
    server.script(reply);
    const err = await failure(call(layer()));
    assert.is(err.code, 'DROPFTP_ERR_UPSTREAM_MALFORMED', JSON.stringify(reply));
    assert.is(err.ftpCode, 451);
    assert.is(server.seen.length, 1);
  }
  server.script({ status: 400, headers: { 'content-type': 'text/plain' }, body: 'Error in call to API function "files/list_folder": request body: path: bad' });
  const bad = await failure(call(layer()));
  assert.is(bad.code, 'DROPFTP_ERR_BAD_PATH');
  assert.match(bad.message, /request body: path/);
});

test('the RPC client (SDK over the layer): a body that is not JSON, or JSON that is not the route\'s result, is DROPFTP_ERR_UPSTREAM_MALFORMED', async () => {
  const rpc = new DropboxRpc({ name: 'm', apiUrl: server.url, accessToken: 't' }, agent);
  const cases: [() => Promise<unknown>, unknown][] = [
    [() => rpc.getMetadata('/x'), '<html>gateway</html>'],
    [() => rpc.getMetadata('/y'), { '.tag': 'file' }],
    [() => rpc.listFolder('/d'), { entries: 5, cursor: 'c', has_more: false }],
    [() => rpc.listFolder('/e'), '{"entries": ['],
    [() => rpc.hasChildren('/f'), null],
  ];
  for (const [run, body] of cases) {
    server.script({ status: 200, body });
    try {
      await run();
      assert.unreachable(`accepted ${JSON.stringify(body)}`);
    } catch (err) {
      assert.instance(err, DropftpError);
      assert.is((err as DropftpError).code, 'DROPFTP_ERR_UPSTREAM_MALFORMED', `${JSON.stringify(body)}: ${(err as Error).message}`);
    }
    assert.is(server.seen[0]!.authorization, 'Bearer t', 'the layer sends the account token');
  }
});

test('an abort during a Retry-After wait ends the call at once with DROPFTP_ERR_ABORTED; a refusing pacer too', async () => {
  server.script({ status: 429, headers: { 'retry-after': '30' }, body: TOO_MANY('too_many_requests', 30) });
  const abort = new AbortController();
  const started = performance.now();
  setTimeout(() => abort.abort(), 100);
  const err = await failure(call(layer({ maxRetryAfterMs: 60_000 }), 'files/get_metadata', true, abort.signal));
  assert.is(err.code, 'DROPFTP_ERR_ABORTED');
  assert.ok(performance.now() - started < 1000);
  const pacer = recordingPacer();
  pacer.refuse = true;
  server.script();
  assert.is((await failure(call(layer({ pacer }), 'files/get_metadata', true, new AbortController().signal))).code, 'DROPFTP_ERR_ABORTED');
  assert.is(server.seen.length, 0, 'nothing sent without admission');
  assert.is(pacer.reports.length, 0);
});

test.run();
