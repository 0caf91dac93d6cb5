// The local box's vertical slice through the official SDK: accounts, upload, get_metadata (case-
// insensitive, by id), download, list_folder, the 409 not_found shape, get_current_account.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { contentHash } from '../../src/localbox/index.ts';
import { makeBox, sdkError, type TestBox } from './helpers.ts';

let t: TestBox;
test.before(async () => {
  t = await makeBox();
});
test.after(async () => {
  await t.cleanup();
});

test('createAccount is idempotent and accounts are separate', async () => {
  const a1 = await t.box.createAccount('alice');
  const a2 = await t.box.createAccount('alice');
  const b = await t.box.createAccount('bob');
  assert.equal(a1, a2);
  assert.is.not(a1.accountId, b.accountId);
  assert.ok(a1.accessToken && a1.refreshToken && a1.appKey && a1.appSecret);
});

test('upload, get_metadata (any case, by id), download, list_folder', async () => {
  const acc = await t.box.createAccount('alice');
  const dbx = t.sdk(acc);
  const up = await dbx.filesUpload({ path: '/Hello/Wörld.txt', contents: Buffer.from('hello world') });
  assert.is(up.result.name, 'Wörld.txt');
  assert.is(up.result.path_display, '/Hello/Wörld.txt');
  assert.is(up.result.size, 11);
  assert.is(up.result.content_hash, contentHash(Buffer.from('hello world')));
  assert.is((up.result as { is_downloadable?: boolean }).is_downloadable, true);
  assert.match(up.result.rev, /^[0-9a-f]{9,}$/);
  assert.match(up.result.server_modified, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  const md = await dbx.filesGetMetadata({ path: '/hello/wÖrld.TXT'.replace('Ö', 'ö') });
  assert.is(md.result['.tag'], 'file');
  assert.is((md.result as { id: string }).id, up.result.id);
  const dl = await dbx.filesDownload({ path: up.result.id });
  assert.is((dl.result as unknown as { fileBinary: Buffer }).fileBinary.toString(), 'hello world');
  const list = await dbx.filesListFolder({ path: '', recursive: true });
  assert.equal(
    list.result.entries.map((e) => [e['.tag'], e.path_display]),
    [
      ['folder', '/Hello'],
      ['file', '/Hello/Wörld.txt'],
    ],
  );
  // another account does not see it
  const bob = t.sdk(await t.box.createAccount('bob'));
  const err = await sdkError(bob.filesGetMetadata({ path: '/Hello/Wörld.txt' }));
  assert.is(err.status, 409);
  assert.equal(err.error.error, { '.tag': 'path', path: { '.tag': 'not_found' } });
  assert.is(err.error.error_summary, 'path/not_found/..');
  const me = await dbx.usersGetCurrentAccount();
  assert.is(me.result.account_id, acc.accountId);
  assert.is(me.result.root_info['.tag'], 'user');
});

test.run();
