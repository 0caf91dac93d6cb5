// Upload sessions through the official SDK: sequential with unaligned appends, wrong offsets
// (correct_offset), closed sessions, concurrent sessions and their 4 MiB rules, finish_batch_v2 with
// mixed results, finish_batch v1 + check, start_batch, write modes and autorename.
import { request } from 'node:http';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { contentHash } from '../../src/localbox/index.ts';
import { bytes, makeBox, sdkError, type TestBox } from './helpers.ts';
import type { Dropbox } from 'dropbox';

const MiB = 1024 * 1024;
let t: TestBox;
let dbx: Dropbox;
let token: string;
test.before(async () => {
  t = await makeBox();
  const account = await t.box.createAccount('alice');
  token = account.accessToken;
  dbx = t.sdk(account);
});
test.after(async () => {
  await t.cleanup();
});

async function download(path: string): Promise<Buffer> {
  const r = await dbx.filesDownload({ path });
  return (r.result as unknown as { fileBinary: Buffer }).fileBinary;
}

test('sequential session with unaligned appends reassembles 4 MiB blocks', async () => {
  const data = bytes(10 * MiB + 12345, 7);
  const cuts = [0, 1000, 3 * MiB, 4 * MiB + 1, 9 * MiB, data.length];
  const { session_id } = (await dbx.filesUploadSessionStart({ contents: data.subarray(0, cuts[1]) })).result;
  for (let i = 1; i < cuts.length - 2; i++) {
    await dbx.filesUploadSessionAppendV2({ cursor: { session_id, offset: cuts[i]! }, contents: data.subarray(cuts[i], cuts[i + 1]) });
  }
  const last = cuts.length - 2;
  const md = await dbx.filesUploadSessionFinish({
    cursor: { session_id, offset: cuts[last]! },
    commit: { path: '/big/seq.bin', mode: { '.tag': 'overwrite' } },
    contents: data.subarray(cuts[last]),
  });
  assert.is(md.result.size, data.length);
  assert.is(md.result.content_hash, contentHash(data));
  assert.ok((await download('/big/seq.bin')).equals(data));
});

test('wrong offsets answer incorrect_offset with correct_offset; closed sessions refuse appends', async () => {
  const { session_id } = (await dbx.filesUploadSessionStart({ contents: Buffer.from('abc') })).result;
  let e = await sdkError(dbx.filesUploadSessionAppendV2({ cursor: { session_id, offset: 1 }, contents: Buffer.from('x') }));
  assert.is(e.status, 409);
  assert.equal(e.error.error, { '.tag': 'incorrect_offset', correct_offset: 3 });
  assert.match(e.error.error_summary, /^incorrect_offset\//);
  e = await sdkError(
    dbx.filesUploadSessionFinish({ cursor: { session_id, offset: 10 }, commit: { path: '/x.txt' }, contents: Buffer.alloc(0) }),
  );
  assert.equal(e.error.error, { '.tag': 'lookup_failed', lookup_failed: { '.tag': 'incorrect_offset', correct_offset: 3 } });
  await dbx.filesUploadSessionAppendV2({ cursor: { session_id, offset: 3 }, close: true, contents: Buffer.from('def') });
  e = await sdkError(dbx.filesUploadSessionAppendV2({ cursor: { session_id, offset: 6 }, contents: Buffer.from('g') }));
  assert.equal(e.error.error, { '.tag': 'closed' });
  // zero-length append on a fresh session, then finish with an empty body
  const s2 = (await dbx.filesUploadSessionStart({ contents: Buffer.alloc(0) })).result.session_id;
  await dbx.filesUploadSessionAppendV2({ cursor: { session_id: s2, offset: 0 }, contents: Buffer.alloc(0) });
  const md = await dbx.filesUploadSessionFinish({ cursor: { session_id: s2, offset: 0 }, commit: { path: '/empty.txt' }, contents: Buffer.alloc(0) });
  assert.is(md.result.size, 0);
  assert.is(md.result.content_hash, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  e = await sdkError(dbx.filesUploadSessionAppendV2({ cursor: { session_id: 'pid_upload_session:nope', offset: 0 }, contents: Buffer.alloc(0) }));
  assert.equal(e.error.error, { '.tag': 'not_found' });
  e = await sdkError(
    dbx.filesUploadSessionFinish({ cursor: { session_id: s2, offset: 0 }, commit: { path: '/again.txt' }, contents: Buffer.alloc(0) }),
  );
  assert.equal(e.error.error, { '.tag': 'lookup_failed', lookup_failed: { '.tag': 'not_found' } });
});

test('concurrent session: 4 MiB-aligned appends in any order, rules enforced', async () => {
  const data = bytes(9 * MiB + 5, 9);
  const { session_id } = (await dbx.filesUploadSessionStart({ session_type: { '.tag': 'concurrent' }, contents: Buffer.alloc(0) })).result;
  let e = await sdkError(dbx.filesUploadSessionAppendV2({ cursor: { session_id, offset: 100 }, contents: Buffer.alloc(10) }));
  assert.equal(e.error.error, { '.tag': 'concurrent_session_invalid_offset' });
  e = await sdkError(dbx.filesUploadSessionAppendV2({ cursor: { session_id, offset: 0 }, contents: Buffer.alloc(10) }));
  assert.equal(e.error.error, { '.tag': 'concurrent_session_invalid_data_size' });
  e = await sdkError(
    dbx.filesUploadSessionFinish({ cursor: { session_id, offset: data.length }, commit: { path: '/conc.bin' }, contents: Buffer.alloc(0) }),
  );
  assert.equal(e.error.error, { '.tag': 'concurrent_session_not_closed' });
  // the closing append lands first; the others follow in parallel
  await dbx.filesUploadSessionAppendV2({ cursor: { session_id, offset: 8 * MiB }, close: true, contents: data.subarray(8 * MiB) });
  e = await sdkError(dbx.filesUploadSessionAppendV2({ cursor: { session_id, offset: 12 * MiB }, contents: data.subarray(0, 4 * MiB) }));
  assert.equal(e.error.error, { '.tag': 'closed' });
  await Promise.all([
    dbx.filesUploadSessionAppendV2({ cursor: { session_id, offset: 4 * MiB }, contents: data.subarray(4 * MiB, 8 * MiB) }),
    dbx.filesUploadSessionAppendV2({ cursor: { session_id, offset: 0 }, contents: data.subarray(0, 4 * MiB) }),
  ]);
  e = await sdkError(
    dbx.filesUploadSessionFinish({ cursor: { session_id, offset: data.length }, commit: { path: '/conc.bin' }, contents: Buffer.from('x') }),
  );
  assert.equal(e.error.error, { '.tag': 'concurrent_session_data_not_allowed' });
  const md = await dbx.filesUploadSessionFinish({ cursor: { session_id, offset: data.length }, commit: { path: '/conc.bin' }, contents: Buffer.alloc(0) });
  assert.is(md.result.content_hash, contentHash(data));
  assert.ok((await download('/conc.bin')).equals(data));
  // a gap: blocks 0 and 2 only
  const s2 = (await dbx.filesUploadSessionStart({ session_type: { '.tag': 'concurrent' }, contents: Buffer.alloc(0) })).result.session_id;
  await dbx.filesUploadSessionAppendV2({ cursor: { session_id: s2, offset: 0 }, contents: data.subarray(0, 4 * MiB) });
  await dbx.filesUploadSessionAppendV2({ cursor: { session_id: s2, offset: 8 * MiB }, close: true, contents: data.subarray(8 * MiB) });
  e = await sdkError(dbx.filesUploadSessionFinish({ cursor: { session_id: s2, offset: data.length }, commit: { path: '/gap.bin' }, contents: Buffer.alloc(0) }));
  assert.equal(e.error.error, { '.tag': 'concurrent_session_missing_data' });
});

test('finish_batch_v2: results in order, successes and failures mixed', async () => {
  await dbx.filesUpload({ path: '/batch/exists.txt', contents: Buffer.from('old') });
  const mk = async (body: string, close: boolean): Promise<string> =>
    (await dbx.filesUploadSessionStart({ close, contents: Buffer.from(body) })).result.session_id;
  const a = await mk('aaa', true);
  const b = await mk('bbb', true);
  const c = await mk('ccc', false); // not closed
  const r = await dbx.filesUploadSessionFinishBatchV2({
    entries: [
      { cursor: { session_id: a, offset: 3 }, commit: { path: '/batch/a.txt' } },
      { cursor: { session_id: b, offset: 3 }, commit: { path: '/batch/exists.txt', mode: { '.tag': 'add' } } },
      { cursor: { session_id: c, offset: 3 }, commit: { path: '/batch/c.txt' } },
      { cursor: { session_id: 'pid_upload_session:missing', offset: 0 }, commit: { path: '/batch/d.txt' } },
      { cursor: { session_id: a, offset: 3 }, commit: { path: '/batch/a2.txt' } },
    ],
  });
  const tags = r.result.entries.map((e) => e['.tag']);
  assert.equal(tags, ['success', 'failure', 'failure', 'failure', 'failure']);
  const entries = r.result.entries as any[];
  assert.is(entries[0].name, 'a.txt');
  assert.equal(entries[1].failure, { '.tag': 'path', path: { '.tag': 'conflict', conflict: { '.tag': 'file' } } });
  assert.equal(entries[2].failure, { '.tag': 'lookup_failed', lookup_failed: { '.tag': 'not_closed' } });
  assert.equal(entries[3].failure, { '.tag': 'lookup_failed', lookup_failed: { '.tag': 'not_found' } });
  assert.equal(entries[4].failure, { '.tag': 'lookup_failed', lookup_failed: { '.tag': 'not_found' } });
  assert.is((await download('/batch/exists.txt')).toString(), 'old');
  // v1 + check, start_batch
  const ids = (await dbx.filesUploadSessionStartBatch({ num_sessions: 2 })).result.session_ids;
  assert.is(ids.length, 2);
  await dbx.filesUploadSessionAppendV2({ cursor: { session_id: ids[0]!, offset: 0 }, close: true, contents: Buffer.from('v1') });
  const job = await dbx.filesUploadSessionFinishBatch({ entries: [{ cursor: { session_id: ids[0]!, offset: 2 }, commit: { path: '/batch/v1.txt' } }] });
  assert.is(job.result['.tag'], 'async_job_id');
  const done = await dbx.filesUploadSessionFinishBatchCheck({ async_job_id: (job.result as { async_job_id: string }).async_job_id });
  assert.is(done.result['.tag'], 'complete');
  assert.is((done.result as any).entries[0]['.tag'], 'success');
  const bad = await sdkError(dbx.filesUploadSessionFinishBatchCheck({ async_job_id: 'dbjid:nope' }));
  assert.equal(bad.error.error, { '.tag': 'invalid_async_job_id' });
});

test('write modes: add conflicts (flattened UploadWriteFailed), autorename, update rev, same content no-op', async () => {
  const first = (await dbx.filesUpload({ path: '/modes/doc.txt', contents: Buffer.from('v1') })).result;
  const e = await sdkError(dbx.filesUpload({ path: '/modes/DOC.txt', contents: Buffer.from('v2') }));
  assert.is(e.status, 409);
  assert.is(e.error.error['.tag'], 'path');
  assert.equal(e.error.error.reason, { '.tag': 'conflict', conflict: { '.tag': 'file' } });
  assert.match(e.error.error.upload_session_id, /^pid_upload_session:/);
  // the session holding the data lets the client retry the commit elsewhere
  const retry = await dbx.filesUploadSessionFinish({
    cursor: { session_id: e.error.error.upload_session_id, offset: 2 },
    commit: { path: '/modes/retried.txt' },
    contents: Buffer.alloc(0),
  });
  assert.is(retry.result.size, 2);
  const renamed = await dbx.filesUpload({ path: '/modes/doc.txt', contents: Buffer.from('v2'), autorename: true });
  assert.is(renamed.result.name, 'doc (2).txt');
  const same = await dbx.filesUpload({ path: '/modes/doc.txt', contents: Buffer.from('v1') });
  assert.is(same.result.rev, first.rev);
  const upd = await dbx.filesUpload({ path: '/modes/doc.txt', contents: Buffer.from('v3'), mode: { '.tag': 'update', update: first.rev } });
  assert.is.not(upd.result.rev, first.rev);
  assert.is(upd.result.id, first.id);
  const stale = await sdkError(dbx.filesUpload({ path: '/modes/doc.txt', contents: Buffer.from('v4'), mode: { '.tag': 'update', update: first.rev } }));
  assert.equal(stale.error.error.reason, { '.tag': 'conflict', conflict: { '.tag': 'file' } });
  const ow = await dbx.filesUpload({ path: '/modes/doc.txt', contents: Buffer.from('v5'), mode: { '.tag': 'overwrite' }, client_modified: '2020-01-02T03:04:05Z' });
  assert.is(ow.result.client_modified, '2020-01-02T03:04:05Z');
  const anc = await sdkError(dbx.filesUpload({ path: '/modes/doc.txt/inner.txt', contents: Buffer.from('x') }));
  assert.equal(anc.error.error.reason, { '.tag': 'conflict', conflict: { '.tag': 'file_ancestor' } });
  const byId = await dbx.filesUpload({ path: first.id, contents: Buffer.from('by id'), mode: { '.tag': 'overwrite' } });
  assert.is(byId.result.path_lower, '/modes/doc.txt');
});

test('an upload_session/start whose chunked body is cut leaves no session behind (its id was never answered)', async () => {
  const sessions = async (): Promise<number> => (await t.admin<{ sessions: number }>('GET', 'stats')).sessions;
  const before = await sessions();
  const data = bytes(6 * MiB + 5, 41);
  const req = request(`${t.box.url}/2/files/upload_session/start`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', 'dropbox-api-arg': JSON.stringify({ close: true }) },
  });
  const failed = new Promise<string>((resolve) => {
    req.on('error', (err) => resolve(err.message));
    req.on('response', (res) => resolve(`answered ${res.statusCode}`));
  });
  req.write(data);
  // Once the box has taken a whole 4 MiB block (sealed into the session), the client goes away.
  for (let i = 0; i < 200 && (await sessions()) === before; i++) await new Promise((r) => setTimeout(r, 10));
  assert.is(await sessions(), before + 1, 'the session exists while its body arrives');
  await new Promise((r) => setTimeout(r, 100));
  req.destroy();
  assert.not.match(await failed, /^answered/, 'no answer to a cut request');
  for (let i = 0; i < 200 && (await sessions()) !== before; i++) await new Promise((r) => setTimeout(r, 10));
  assert.is(await sessions(), before, 'the session is gone');
});

test.run();
