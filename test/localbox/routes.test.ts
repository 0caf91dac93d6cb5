// RPC routes through the official SDK: create_folder_v2, delete_v2, move_v2, copy_v2 with their
// error unions; list_folder paging, continue as a change feed with deleted entries, get_latest_cursor,
// longpoll waking on a change; users/*, check/user; the 400/401 shapes; bad input never crashes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Dropbox } from 'dropbox';
import type { LocalBoxAccount } from '../../src/localbox/index.ts';
import { makeBox, sdkError, type TestBox } from './helpers.ts';

let t: TestBox;
let acc: LocalBoxAccount;
let dbx: Dropbox;
test.before(async () => {
  t = await makeBox();
  acc = await t.box.createAccount('alice');
  dbx = t.sdk(acc);
});
test.after(async () => {
  await t.cleanup();
});

test('create_folder_v2, move_v2, copy_v2, delete_v2 and their errors', async () => {
  const f = await dbx.filesCreateFolderV2({ path: '/A/B' });
  assert.is(f.result.metadata.path_display, '/A/B');
  let e = await sdkError(dbx.filesCreateFolderV2({ path: '/a/b' }));
  assert.equal(e.error.error, { '.tag': 'path', path: { '.tag': 'conflict', conflict: { '.tag': 'folder' } } });
  assert.is((await dbx.filesCreateFolderV2({ path: '/a/b', autorename: true })).result.metadata.name, 'b (2)');
  await dbx.filesUpload({ path: '/A/B/f.txt', contents: Buffer.from('one') });
  const mv = await dbx.filesMoveV2({ from_path: '/a/b', to_path: '/C/moved' });
  assert.is(mv.result.metadata['.tag'], 'folder');
  assert.is(mv.result.metadata.path_display, '/C/moved');
  assert.is((await dbx.filesGetMetadata({ path: '/c/MOVED/f.txt' })).result.name, 'f.txt');
  e = await sdkError(dbx.filesMoveV2({ from_path: '/nope', to_path: '/x' }));
  assert.equal(e.error.error, { '.tag': 'from_lookup', from_lookup: { '.tag': 'not_found' } });
  e = await sdkError(dbx.filesMoveV2({ from_path: '/C', to_path: '/C/moved/inner' }));
  assert.equal(e.error.error, { '.tag': 'cant_move_folder_into_itself' });
  const cp = await dbx.filesCopyV2({ from_path: '/C/moved/f.txt', to_path: '/copy.txt' });
  assert.is(cp.result.metadata['.tag'], 'file');
  e = await sdkError(dbx.filesCopyV2({ from_path: '/C/moved/f.txt', to_path: '/copy.txt' }));
  assert.equal(e.error.error, { '.tag': 'to', to: { '.tag': 'conflict', conflict: { '.tag': 'file' } } });
  const byId = await dbx.filesMoveV2({ from_path: (cp.result.metadata as { id: string }).id, to_path: '/renamed.txt' });
  assert.is(byId.result.metadata.name, 'renamed.txt');
  const del = await dbx.filesDeleteV2({ path: '/C' });
  assert.is(del.result.metadata['.tag'], 'folder');
  e = await sdkError(dbx.filesGetMetadata({ path: '/C/moved/f.txt' }));
  assert.equal(e.error.error, { '.tag': 'path', path: { '.tag': 'not_found' } });
  e = await sdkError(dbx.filesDeleteV2({ path: '/C' }));
  assert.equal(e.error.error, { '.tag': 'path_lookup', path_lookup: { '.tag': 'not_found' } });
  const dm = await dbx.filesGetMetadata({ path: '/C', include_deleted: true });
  assert.is(dm.result['.tag'], 'deleted');
  e = await sdkError(dbx.filesListFolder({ path: '/renamed.txt' }));
  assert.equal(e.error.error, { '.tag': 'path', path: { '.tag': 'not_folder' } });
  e = await sdkError(dbx.filesGetMetadata({ path: '/a//b' }));
  assert.equal(e.error.error, { '.tag': 'path', path: { '.tag': 'malformed_path' } });
});

test('list_folder: root "" vs "/" (400), many pages, continue with deleted entries', async () => {
  const e = await sdkError(dbx.filesListFolder({ path: '/' }));
  assert.is(e.status, 400);
  assert.match(String(e.error), /Specify the root folder as an empty string/);
  await dbx.filesCreateFolderV2({ path: '/pages' });
  const n = 25;
  const ids = (await dbx.filesUploadSessionStartBatch({ num_sessions: n })).result.session_ids;
  await dbx.filesUploadSessionFinishBatchV2({
    entries: ids.map((id, i) => ({ cursor: { session_id: id, offset: 0 }, commit: { path: `/pages/f${String(i).padStart(2, '0')}.txt` } })),
  }).then(async (r) => {
    // sessions opened by start_batch are not closed: every entry fails, then close and retry
    assert.ok(r.result.entries.every((x) => x['.tag'] === 'failure'));
    for (const id of ids) await dbx.filesUploadSessionAppendV2({ cursor: { session_id: id, offset: 0 }, close: true, contents: Buffer.alloc(0) });
    const ok = await dbx.filesUploadSessionFinishBatchV2({
      entries: ids.map((id, i) => ({ cursor: { session_id: id, offset: 0 }, commit: { path: `/pages/f${String(i).padStart(2, '0')}.txt` } })),
    });
    assert.ok(ok.result.entries.every((x) => x['.tag'] === 'success'));
  });
  const seen: string[] = [];
  let page = await dbx.filesListFolder({ path: '/pages', limit: 4 });
  let pages = 1;
  seen.push(...page.result.entries.map((x) => x.name));
  while (page.result.has_more) {
    page = await dbx.filesListFolderContinue({ cursor: page.result.cursor });
    seen.push(...page.result.entries.map((x) => x.name));
    pages++;
  }
  assert.is(seen.length, n);
  assert.is(new Set(seen).size, n);
  assert.ok(pages >= 7, `pages ${pages}`);
  // the final cursor is a change feed
  const cursor = page.result.cursor;
  await dbx.filesDeleteV2({ path: '/pages/f03.txt' });
  await dbx.filesUpload({ path: '/pages/new.txt', contents: Buffer.from('n') });
  await dbx.filesUpload({ path: '/elsewhere.txt', contents: Buffer.from('n') });
  const feed = await dbx.filesListFolderContinue({ cursor });
  assert.equal(
    feed.result.entries.map((x) => [x['.tag'], x.name]),
    [
      ['deleted', 'f03.txt'],
      ['file', 'new.txt'],
    ],
  );
  const latest = await dbx.filesListFolderGetLatestCursor({ path: '/pages' });
  const none = await dbx.filesListFolderContinue({ cursor: latest.result.cursor });
  assert.is(none.result.entries.length, 0);
});

test('longpoll wakes on a change (no Authorization header)', async () => {
  const latest = await dbx.filesListFolderGetLatestCursor({ path: '', recursive: true });
  const started = Date.now();
  const poll = fetch(`${t.box.url}/2/files/list_folder/longpoll`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ cursor: latest.result.cursor, timeout: 30 }),
  }).then((r) => r.json());
  await new Promise((r) => setTimeout(r, 200));
  await dbx.filesUpload({ path: '/wake.txt', contents: Buffer.from('w') });
  assert.equal(await poll, { changes: true });
  assert.ok(Date.now() - started < 5000);
  const sdkPoll = await dbx.filesListFolderLongpoll({ cursor: latest.result.cursor, timeout: 30 });
  assert.is(sdkPoll.result.changes, true);
  const bad = await sdkError(dbx.filesListFolderLongpoll({ cursor: latest.result.cursor, timeout: 5 }));
  assert.is(bad.status, 400);
});

test('users, check/user, space usage', async () => {
  const u = await dbx.usersGetSpaceUsage();
  assert.ok(u.result.used > 0);
  assert.is(u.result.allocation['.tag'], 'individual');
  assert.equal((await dbx.checkUser({ query: 'ping' })).result, { result: 'ping' });
  // Void routes: no body, `null`, with or without Content-Type
  for (const init of [{}, { body: 'null', headers: { 'Content-Type': 'application/json' } }, { body: 'null' }]) {
    const r = await t.call('users/get_current_account', acc.accessToken, init);
    assert.is(r.status, 200);
    assert.is(((await r.json()) as { account_id: string }).account_id, acc.accountId);
  }
});

test('400 and 401 shapes; bad input never crashes the server', async () => {
  let r = await t.call('files/get_metadata', 'sl.bogus', { json: { path: '/x' } });
  assert.is(r.status, 401);
  assert.equal(await r.json(), { error_summary: 'invalid_access_token/..', error: { '.tag': 'invalid_access_token' } });
  r = await t.call('files/get_metadata', null, { json: { path: '/x' } });
  assert.is(r.status, 400);
  await r.text();
  const cases: [string, RequestInit & { json?: unknown }][] = [
    ['files/get_metadata', { body: '{"path": ', headers: { 'Content-Type': 'application/json' } }],
    ['files/get_metadata', { body: '[]', headers: { 'Content-Type': 'application/json' } }],
    ['files/get_metadata', { body: '{"path":"/x"}', headers: { 'Content-Type': 'text/html' } }],
    ['files/get_metadata', { json: { path: 5 } }],
    ['files/list_folder', { json: { path: '', limit: 1e300 } }],
    ['files/list_folder', { json: { path: '', limit: 0 } }],
    ['files/list_folder/continue', { json: { cursor: 'garbage' } }],
    ['files/upload_session/finish_batch_v2', { json: { entries: [{ cursor: { session_id: 'x', offset: -1 }, commit: { path: '/a' } }] } }],
    ['files/upload_session/finish_batch_v2', { json: { entries: Array.from({ length: 1001 }, () => ({})) } }],
    ['files/upload_session/start_batch', { json: { num_sessions: 1, session_type: { '.tag': 'bogus' } } }],
    ['files/create_folder_v2', { json: { path: 'id:abc' } }],
    ['files/get_metadata', { json: { path: '' } }],
    ['files/list_folder', { json: { path: '', recursive: 'yes' } }],
    ['files/copy_v2', { json: { from_path: '/a' } }],
  ];
  for (const [route, init] of cases) {
    r = await t.call(route, acc.accessToken, init);
    const text = await r.text();
    assert.is(r.status, 400, `${route} ${JSON.stringify(init).slice(0, 80)} → ${r.status} ${text.slice(0, 200)}`);
    assert.ok(r.headers.get('content-type')!.startsWith('text/plain'));
  }
  r = await t.call('files/upload', acc.accessToken, { arg: { path: '/u.txt', mode: 'update' }, body: 'x', headers: { 'Content-Type': 'application/octet-stream' } });
  assert.is(r.status, 400);
  await r.text();
  r = await t.call('files/upload', acc.accessToken, { arg: { path: '/u.txt', mode: { '.tag': 'overwrite' }, unknown_field: 1 }, body: 'x', headers: { 'Content-Type': 'application/octet-stream' } });
  assert.is(r.status, 200);
  await r.text();
  r = await t.call('files/get_metadata', acc.accessToken, { json: { path: `/${'x'.repeat(100_000)}` } });
  assert.is(r.status, 409);
  assert.equal(((await r.json()) as { error: unknown }).error, { '.tag': 'path', path: { '.tag': 'malformed_path' } });
  r = await fetch(`${t.box.url}/2/no/such_route`, { method: 'POST' });
  assert.is(r.status, 404);
  await r.text();
  // still alive
  assert.is((await dbx.checkUser({ query: 'alive' })).result.result, 'alive');
});

test('oauth2/token: refresh grant (query or form), authorization_code with PKCE, expired tokens', async () => {
  // the SDK's refresh sends params in the query string with an empty body
  const sdk = new (await import('dropbox')).Dropbox({
    clientId: acc.appKey,
    clientSecret: acc.appSecret,
    refreshToken: acc.refreshToken,
    fetch: (url: string, init: RequestInit) => fetch(url.replace(/^https:\/\/[^/]+/, t.box.url), init),
  } as never);
  assert.is((await sdk.checkUser({ query: 'refreshed' })).result.result, 'refreshed');
  const form = await fetch(`${t.box.url}/1/oauth2/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: `Basic ${Buffer.from(`${acc.appKey}:${acc.appSecret}`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: acc.refreshToken }),
  });
  const tok = (await form.json()) as { access_token: string; expires_in: number; token_type: string };
  assert.is(tok.token_type, 'bearer');
  assert.is(tok.expires_in, 14400);
  const bad = await fetch(`${t.box.url}/oauth2/token?grant_type=refresh_token&refresh_token=nope`, { method: 'POST' });
  assert.is(bad.status, 400);
  assert.is(((await bad.json()) as { error: string }).error, 'invalid_grant');
  // PKCE code exchange
  const { createHash, randomBytes } = await import('node:crypto');
  const verifier = randomBytes(64).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const { code } = await t.admin<{ code: string }>('POST', 'oauth/code', { account: 'alice', code_challenge: challenge, code_challenge_method: 'S256' });
  const wrong = await fetch(`${t.box.url}/oauth2/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'authorization_code', code, client_id: acc.appKey, code_verifier: 'x' }) });
  assert.is(wrong.status, 400);
  await wrong.text();
  const { code: code2 } = await t.admin<{ code: string }>('POST', 'oauth/code', { account: 'alice', code_challenge: challenge });
  const ok = await fetch(`${t.box.url}/oauth2/token?${new URLSearchParams({ grant_type: 'authorization_code', code: code2, client_id: acc.appKey, code_verifier: verifier })}`, { method: 'POST' });
  const exch = (await ok.json()) as { access_token: string; refresh_token: string; account_id: string };
  assert.is(exch.account_id, acc.accountId);
  // expire every access token: 401 expired_access_token, then a refresh works again
  await t.admin('POST', 'expire-tokens', { account: 'alice' });
  const r = await t.call('check/user', exch.access_token, { json: { query: 'x' } });
  assert.is(r.status, 401);
  assert.equal(await r.json(), { error_summary: 'expired_access_token/..', error: { '.tag': 'expired_access_token' } });
  const again = t.sdk({ ...acc, accessToken: (await (await fetch(`${t.box.url}/oauth2/token?grant_type=refresh_token&refresh_token=${exch.refresh_token}&client_id=${acc.appKey}`, { method: 'POST' })).json() as { access_token: string }).access_token });
  assert.is((await again.checkUser({ query: 'back' })).result.result, 'back');
  dbx = t.sdk(await t.box.createAccount('alice'));
  // revoke
  const fresh = await t.box.createAccount('alice');
  await t.sdk(fresh).authTokenRevoke();
  assert.is((await t.call('check/user', fresh.accessToken, { json: {} })).status, 401);
});

test.run();
