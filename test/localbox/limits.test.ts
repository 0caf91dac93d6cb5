// Dropbox's limits in the local box (issue 15): the per-account call-rate limit (429
// too_many_requests with a Retry-After equal to error.retry_after; refused calls count), the
// namespace write lock (429 or per-entry too_many_write_operations), run-time changes through
// /admin/limits, bad settings refused, and nothing refused with both off. Official SDK and raw HTTP.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { contentHash, startLocalBox, type LocalBoxAccount } from '../../src/localbox/index.ts';
import { adminOf } from '../../src/localbox/index.ts';
import { bytes, makeBox, sdkError, type TestBox } from './helpers.ts';

let t: TestBox;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test.before(async () => {
  t = await makeBox({ limits: { rateLimit: '12:12' } });
});
test.after(async () => {
  await t.cleanup();
});

const metadata = (acc: LocalBoxAccount): Promise<Response> => t.call('files/get_metadata', acc.accessToken, { json: { path: '/nothing-here' } });

interface RateLimitBody {
  error_summary: string;
  error: { reason: { '.tag': string }; retry_after: number };
}

test('12:12: a burst of 100 get_metadata draws 429s whose Retry-After equals error.retry_after (raw HTTP and SDK)', async () => {
  const acc = await t.box.createAccount('burst');
  const started = performance.now();
  const replies = await Promise.all(Array.from({ length: 100 }, () => metadata(acc)));
  const seconds = (performance.now() - started) / 1000;
  const admitted = replies.filter((r) => r.status === 409).length; // the path does not exist: admitted calls answer 409
  const refused = replies.filter((r) => r.status === 429);
  // the burst, plus what the bucket refilled while the 100 calls were arriving (a busy machine is slow)
  assert.ok(admitted >= 12 && admitted <= 12 + Math.ceil(12 * seconds), `admitted ${admitted} in ${seconds.toFixed(2)} s`);
  assert.is(admitted + refused.length, 100);
  for (const r of refused) {
    const body = (await r.json()) as RateLimitBody;
    assert.is(r.headers.get('content-type'), 'application/json');
    assert.is(body.error.reason['.tag'], 'too_many_requests');
    assert.is(body.error_summary, 'too_many_requests/..');
    assert.ok(Number.isInteger(body.error.retry_after) && body.error.retry_after >= 1);
    assert.is(r.headers.get('retry-after'), String(body.error.retry_after));
  }
  await Promise.all(replies.filter((r) => r.status !== 429).map((r) => r.text()));
  const e = await sdkError(t.sdk(acc).filesGetMetadata({ path: '/nothing-here' }));
  assert.is(e.status, 429);
  assert.is(e.error.error.reason['.tag'], 'too_many_requests');
  assert.is(e.headers.get('retry-after'), String(e.error.error.retry_after));
  const calls = await adminOf(t.box).calls();
  assert.is(calls.limits.byAccount.burst!.calls, 101);
  assert.is(calls.limits.byAccount.burst!.tooManyRequests, 101 - admitted);
});

test('12:12: a client honouring Retry-After sustains 12/s +-15 % over 20 s; one ignoring it gets no more than 12/s', async () => {
  const polite = await t.box.createAccount('polite');
  const rude = await t.box.createAccount('rude');
  const durationMs = 20_000;
  const started = performance.now();
  const honour = async (): Promise<number> => {
    let ok = 0;
    while (performance.now() - started < durationMs) {
      const r = await metadata(polite);
      if (r.status === 429) {
        const body = (await r.json()) as RateLimitBody;
        const waitMs = Number(r.headers.get('retry-after')) * 1000;
        assert.is(waitMs, body.error.retry_after * 1000);
        if (performance.now() - started + waitMs >= durationMs) break;
        await sleep(waitMs);
      } else {
        assert.is(r.status, 409);
        await r.text();
        ok++;
      }
    }
    return ok;
  };
  // ignores Retry-After: 4 loops, a call every 20 ms each, for 6 s
  const ignore = async (): Promise<{ ok: number; seconds: number }> => {
    let ok = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (performance.now() - t0 < 6000) {
          const r = await metadata(rude);
          if (r.status !== 429) ok++;
          await r.text();
          await sleep(20);
        }
      }),
    );
    return { ok, seconds: (performance.now() - t0) / 1000 };
  };
  const [honoured, ignored] = await Promise.all([honour(), ignore()]);
  const rate = honoured / (durationMs / 1000);
  assert.ok(rate >= 12 * 0.85 && rate <= 12 * 1.15, `honouring client: ${rate.toFixed(2)}/s`);
  assert.ok(ignored.ok <= 12 * ignored.seconds, `ignoring client: ${ignored.ok} calls in ${ignored.seconds.toFixed(1)} s`);
});

async function closedSession(acc: LocalBoxAccount, data: Buffer): Promise<string> {
  const r = await t.call('files/upload_session/start', acc.accessToken, { arg: { close: true }, body: data, headers: { 'Content-Type': 'application/octet-stream' } });
  assert.is(r.status, 200);
  return ((await r.json()) as { session_id: string }).session_id;
}

test('write lock 200 ms (set at run time): the second finish_batch_v2 50 ms later gets too_many_write_operations per entry; after retry_after both commit', async () => {
  await adminOf(t.box).setLimits({ rateLimit: null, writeLock: 200 });
  assert.equal(await t.admin('GET', 'limits'), { rateLimit: null, writeLock: { holdMs: 200 } });
  const acc = await t.box.createAccount('writer');
  const sdk = t.sdk(acc);
  const a = bytes(100_000, 21);
  const b = [bytes(70_000, 22), bytes(5, 23)];
  const sa = await closedSession(acc, a);
  const sb = await Promise.all(b.map((d) => closedSession(acc, d)));
  const entry = (id: string, size: number, path: string) => ({ cursor: { session_id: id, offset: size }, commit: { path, mode: { '.tag': 'overwrite' as const } } });
  const first = sdk.filesUploadSessionFinishBatchV2({ entries: [entry(sa, a.length, '/a.bin')] });
  await sleep(50);
  const secondEntries = [entry(sb[0]!, b[0]!.length, '/b0.bin'), entry(sb[1]!, b[1]!.length, '/b1.bin')];
  const second = await sdk.filesUploadSessionFinishBatchV2({ entries: secondEntries });
  assert.equal(second.result.entries, [
    { '.tag': 'failure', failure: { '.tag': 'too_many_write_operations' } },
    { '.tag': 'failure', failure: { '.tag': 'too_many_write_operations' } },
  ] as never);
  // other writes are refused with a 429 while the lock is held
  const mk = await t.call('files/create_folder_v2', acc.accessToken, { json: { path: '/d' } });
  assert.is(mk.status, 429);
  assert.is(mk.headers.get('retry-after'), '1');
  assert.equal(await mk.json(), { error_summary: 'too_many_write_operations/..', error: { reason: { '.tag': 'too_many_write_operations' }, retry_after: 1 } });
  const firstDone = await first;
  assert.is(firstDone.result.entries[0]!['.tag'], 'success');
  await sleep(1000); // retry_after
  const retried = await sdk.filesUploadSessionFinishBatchV2({ entries: secondEntries });
  assert.equal(retried.result.entries.map((e) => e['.tag']), ['success', 'success']);
  for (const [path, data] of [['/a.bin', a], ['/b0.bin', b[0]!], ['/b1.bin', b[1]!]] as const) {
    const r = await t.call('files/download', acc.accessToken, { arg: { path } });
    assert.ok(Buffer.from(await r.arrayBuffer()).equals(data), path);
    assert.is(JSON.parse(r.headers.get('dropbox-api-result')!).content_hash, contentHash(data));
  }
  const calls = await adminOf(t.box).calls();
  assert.is(calls.limits.byAccount.writer!.tooManyWriteOperations, 3);
});

test('write lock: a refused upload_session/finish leaves its session intact for the retry', async () => {
  await adminOf(t.box).setLimits({ writeLock: 300 });
  const acc = await t.box.createAccount('finisher');
  const data = bytes(50_000, 31);
  const s1 = await closedSession(acc, data);
  const s2 = await closedSession(acc, data);
  const finish = (id: string, path: string) => t.call('files/upload_session/finish', acc.accessToken, { arg: { cursor: { session_id: id, offset: data.length }, commit: { path } }, body: '', headers: { 'Content-Type': 'application/octet-stream' } });
  const p1 = finish(s1, '/one.bin');
  await sleep(50);
  const r2 = await finish(s2, '/two.bin');
  assert.is(r2.status, 429);
  assert.is(((await r2.json()) as RateLimitBody).error.reason['.tag'], 'too_many_write_operations');
  assert.is((await p1).status, 200);
  await sleep(1000);
  const again = await finish(s2, '/two.bin');
  assert.is(again.status, 200);
  assert.is(((await again.json()) as { size: number }).size, data.length);
});

test('limits off: nothing refused, even for a burst of calls and concurrent commits', async () => {
  await adminOf(t.box).setLimits({ rateLimit: null, writeLock: null });
  await t.admin('POST', 'calls/reset');
  const acc = await t.box.createAccount('free');
  const replies = await Promise.all(Array.from({ length: 150 }, () => metadata(acc)));
  assert.equal([...new Set(replies.map((r) => r.status))], [409]);
  await Promise.all(replies.map((r) => r.text()));
  const sdk = t.sdk(acc);
  const ids = await Promise.all([1, 2, 3, 4].map((i) => closedSession(acc, bytes(1000, i))));
  const results = await Promise.all(ids.map((id, i) => sdk.filesUploadSessionFinishBatchV2({ entries: [{ cursor: { session_id: id, offset: 1000 }, commit: { path: `/f${i}` } }] })));
  for (const r of results) assert.is(r.result.entries[0]!['.tag'], 'success');
  const calls = await adminOf(t.box).calls();
  assert.is(calls.limits.tooManyRequests, 0);
  assert.is(calls.limits.tooManyWriteOperations, 0);
});

test('bad limit settings are refused with the field named; extreme ones keep replies well-formed', async () => {
  const before = await t.admin('GET', 'limits');
  for (const [body, field] of [
    [{ rateLimit: 'fast' }, 'rateLimit'],
    [{ rateLimit: '12:0' }, 'rateLimit'],
    [{ rateLimit: { rate: 0 } }, 'rateLimit'],
    [{ rateLimit: { rate: -5, burst: 2 } }, 'rateLimit'],
    [{ rateLimit: { rate: 1, burst: 1.5 } }, 'rateLimit'],
    [{ writeLock: -1 }, 'writeLock'],
    [{ writeLock: 1e12 }, 'writeLock'],
    [{ writeLock: 'soon' }, 'writeLock'],
    [{ rateLimt: '12' }, 'rateLimt'],
  ] as const) {
    const r = await fetch(`${t.box.url}/admin/limits`, { method: 'POST', headers: { Authorization: `Bearer ${t.box.adminToken}` }, body: JSON.stringify(body) });
    assert.is(r.status, 400, JSON.stringify(body));
    assert.match(await r.text(), field);
  }
  assert.equal(await t.admin('GET', 'limits'), before);
  // the slowest allowed rate: the second call waits 2000 s, as a whole number, header and body alike
  await adminOf(t.box).setLimits({ rateLimit: { rate: 0.001, burst: 1 } });
  const acc = await t.box.createAccount('slow');
  const ok = await metadata(acc);
  assert.is(ok.status, 409);
  await ok.text();
  const r = await metadata(acc);
  assert.is(r.status, 429);
  const body = (await r.json()) as RateLimitBody;
  assert.is(body.error.retry_after, 2000);
  assert.is(r.headers.get('retry-after'), '2000');
  await adminOf(t.box).setLimits({ rateLimit: { rate: 1_000_000, burst: 1_000_000 }, writeLock: 0 });
  const fine = await metadata(acc);
  assert.is(fine.status, 409);
  await fine.text();
  await adminOf(t.box).setLimits({ rateLimit: null, writeLock: null });
});

test('startLocalBox refuses a malformed limit option, naming it', async () => {
  for (const limits of [{ rateLimit: '12:' }, { writeLock: 'x' as never }]) {
    try {
      await startLocalBox({ dataDir: t.dir + '-never', limits });
      assert.unreachable('should refuse');
    } catch (err) {
      assert.instance(err, TypeError);
      assert.match((err as Error).message, /option "limits": (rateLimit|writeLock): expected/);
    }
  }
});

test.run();
