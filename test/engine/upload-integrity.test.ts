// An upload's bytes damaged on their way to Dropbox never stay committed as the client's file. A call
// that carries its content_hash (a known-length call of whole 4 MiB blocks, or the file's last) is
// refused by the box when a byte arrives flipped, and sent again from retention: 226, byte-exact. A
// streamed call (unknown length, no content_hash) lets the damage into the session; the commit's
// content_hash then differs from the client's, and the engine deletes that revision (delete_v2 with
// parent_rev) before failing the STOR with DROPFTP_ERR_INTEGRITY (451). The damage is the local box's
// corrupt_upload fault: one byte of the request body flipped on arrival, before the box hashes it.
// Main thread + 1 worker + the box child, over HTTP.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DropftpError } from '../../src/errors.ts';
import { adminOf, contentHash } from '../../src/localbox/index.ts';
import { KiB, MiB, contentOf, feed, fetchFile, makePool, seed, sha256, startFixture } from './helpers.ts';
import type { Fixture } from './helpers.ts';

let fx: Fixture;
const warnings: Record<string, unknown>[] = [];
const pool = makePool(24 * MiB, 23);
const UPLOAD_ROUTES = ['files/upload_session/start', 'files/upload_session/append_v2'];

test.before(async () => {
  fx = await startFixture({ workers: 1, log: { warn: (obj) => void warnings.push(obj as Record<string, unknown>), info: () => {} } });
});
test.after(async () => {
  await fx?.stop();
});

/** The box's answers to the upload routes since `before`, by status. */
async function uploadAnswers(before: Record<string, number>): Promise<Record<string, number>> {
  const now = await statusCounts();
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(now)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0);
  return out;
}

async function statusCounts(): Promise<Record<string, number>> {
  const snap = await adminOf(fx.box).calls();
  const out: Record<string, number> = {};
  for (const route of UPLOAD_ROUTES) {
    for (const [status, n] of Object.entries(snap.routes[route]?.status ?? {})) out[status] = (out[status] ?? 0) + n;
  }
  return out;
}

/** corrupt_upload faults fired so far (the box counts them over its life). */
async function corruptions(): Promise<number> {
  return (await fx.box.faultCounts()).corrupt_upload ?? 0;
}

async function outcome(p: Promise<unknown>): Promise<DropftpError | null> {
  return p.then(
    () => null,
    (err: unknown) => {
      assert.instance(err, DropftpError);
      return err as DropftpError;
    },
  );
}

test('a byte flipped in a call that carries content_hash: the box refuses it, the retry commits byte-exact', async () => {
  const data = contentOf(pool, 1, 8 * MiB + 5);
  const before = await statusCounts();
  const firedBefore = await corruptions();
  await fx.box.setFaults({ rules: [{ kind: 'corrupt_upload', routes: UPLOAD_ROUTES, afterBytes: 3 * MiB + 17, count: 1 }] });
  try {
    // Written whole before the end: one closing call of known length, hashed.
    const up = fx.engine.openUpload('alice', '/integrity/hashed.bin');
    assert.is(await outcome(feed(up, data, 256 * KiB)), null, 'the upload succeeds');
    assert.is((up.metadata as Record<string, unknown> | undefined)?.content_hash, contentHash(data));
  } finally {
    const fired = (await corruptions()) - firedBefore;
    await fx.box.setFaults({ rules: [] });
    assert.is(fired, 1, 'the fault fired once');
  }
  const stored = await fetchFile(fx.box, fx.account.accessToken, '/integrity/hashed.bin');
  assert.is(stored && sha256(stored), sha256(data), 'byte-exact');
  const answers = await uploadAnswers(before);
  assert.is(answers['409'], 1, `one call refused (content_hash_mismatch): ${JSON.stringify(answers)}`);
});

test('a byte flipped in a streamed call: the damaged revision is deleted and the upload fails with DROPFTP_ERR_INTEGRITY', async () => {
  const data = contentOf(pool, 2, 12 * MiB + 3);
  const firedBefore = await corruptions();
  await fx.box.setFaults({ rules: [{ kind: 'corrupt_upload', routes: UPLOAD_ROUTES, afterBytes: 1 * MiB + 9, count: 1 }] });
  let err: DropftpError | null;
  try {
    // A 2 MiB lead: a call of unknown length (no content_hash) takes the bytes as they come.
    const up = fx.engine.openUpload('alice', '/integrity/streamed.bin', { testHooks: { leadBytes: 2 * MiB } });
    err = await outcome(feed(up, data, 64 * KiB));
    assert.is(up.metadata, null, 'no metadata: not a success');
  } finally {
    const fired = (await corruptions()) - firedBefore;
    await fx.box.setFaults({ rules: [] });
    assert.is(fired, 1, 'the fault fired once');
  }
  assert.ok(err, 'the upload fails');
  assert.is(err!.code, 'DROPFTP_ERR_INTEGRITY', err!.message);
  assert.match(err!.message, /revision \S+ deleted/);
  assert.is(await fetchFile(fx.box, fx.account.accessToken, '/integrity/streamed.bin'), null, 'nothing left at the path');
  const logged = warnings.find((w) => w.event === 'upload-integrity-failed' && w.path === '/integrity/streamed.bin');
  assert.ok(logged, `a warning names it: ${JSON.stringify(warnings)}`);
  assert.is(logged!.outcome, 'deleted');
  assert.type(logged!.rev, 'string');
});

test('the same onto an existing file: the damaged revision is deleted, never left as the file', async () => {
  await seed(fx.box, fx.account.accessToken, '/integrity/old.bin', contentOf(pool, 3, 100 * KiB));
  const data = contentOf(pool, 4, 9 * MiB);
  await fx.box.setFaults({ rules: [{ kind: 'corrupt_upload', routes: UPLOAD_ROUTES, afterBytes: 5 * MiB, count: 1 }] });
  let err: DropftpError | null;
  try {
    const up = fx.engine.openUpload('alice', '/integrity/old.bin', { testHooks: { leadBytes: 2 * MiB } });
    err = await outcome(feed(up, data, 64 * KiB));
  } finally {
    await fx.box.setFaults({ rules: [] });
  }
  assert.is(err?.code, 'DROPFTP_ERR_INTEGRITY');
  const stored = await fetchFile(fx.box, fx.account.accessToken, '/integrity/old.bin');
  assert.is(stored, null, `the path holds ${stored?.length} B, not the damaged revision`);
});

test('the engine counts both failed commits as deleted', () => {
  assert.equal(fx.engine.stats().integrityFailures, { deleted: 2, gone: 0, changed: 0, failed: 0 });
});

test('without damage the same streamed upload commits byte-exact (the lead path itself is sound)', async () => {
  const data = contentOf(pool, 5, 12 * MiB + 3);
  const up = fx.engine.openUpload('alice', '/integrity/clean.bin', { testHooks: { leadBytes: 2 * MiB } });
  assert.is(await outcome(feed(up, data, 64 * KiB)), null);
  const stored = await fetchFile(fx.box, fx.account.accessToken, '/integrity/clean.bin');
  assert.is(stored && sha256(stored), sha256(data), 'byte-exact');
});

test.run();
