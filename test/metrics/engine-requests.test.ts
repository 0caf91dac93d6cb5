// The transfer engine's Dropbox requests in dropftp_dropbox_requests_total: after 2 uploads and 1
// download of known sizes through the real engine (2 worker threads) and the real local box, the
// engine's stats().requests and the scraped series count every start / append_v2 / finish_batch_v2 /
// download answer by route and status, and a 429 injected by the box on files/download shows as 429;
// the pacer's and the spool's series read the same figures as the engine's stats().

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ServiceMetrics } from '../../src/metrics/service-metrics.ts';
import { KiB, MiB, contentOf, drain, feed, makePool, seed, sha256, startFixture } from '../engine/helpers.ts';
import type { Fixture } from '../engine/helpers.ts';

let fx: Fixture;
let metrics: ServiceMetrics;
const pool = makePool(8 * MiB, 11);

test.before(async () => {
  fx = await startFixture({ workers: 2 });
  metrics = new ServiceMetrics();
  metrics.attachEngine(() => fx.engine.stats());
});
test.after(async () => {
  metrics.close();
  await fx.stop();
});

async function scrape(prefix = 'dropftp_dropbox_requests_total{'): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await metrics.render()).split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

const series = (route: string, status: string) => `dropftp_dropbox_requests_total{route="${route}",status="${status}"}`;
const S = 'files/upload_session/';

test('2 uploads and 1 download are counted by route and status; an injected 429 shows as 429', async () => {
  // The box counts a zero-latency "fault" once per append_v2 it serves: the exact number to expect.
  await fx.box.setFaults({ rules: [{ kind: 'latency', latencyMs: 0, routes: [`${S}append_v2`] }] });
  const appendsBefore = (await fx.box.faultCounts()).latency ?? 0;
  const sizes = [5 * MiB + 3, 300 * KiB];
  await Promise.all(sizes.map((size, i) => feed(fx.engine.openUpload('alice', `/m/u${i}.bin`), contentOf(pool, i, size), 128 * KiB)));
  const appends = ((await fx.box.faultCounts()).latency ?? 0) - appendsBefore;
  await fx.box.setFaults({ rules: [] });
  // Retention (8 MiB in memory, then the spool) holds each upload whole: one start call each.
  assert.is(appends, 0, `uploads under the retention size need no append_v2 (box saw ${appends})`);

  const data = contentOf(pool, 9, 2 * MiB + 17);
  await seed(fx.box, fx.account.accessToken, '/m/d.bin', data);
  assert.is((await drain(fx.engine.openDownload('alice', '/m/d.bin'))).sha, sha256(data));

  const after = fx.engine.stats();
  assert.equal(after.requests[`${S}start`], { '200': 2 });
  assert.is(after.requests[`${S}append_v2`], undefined);
  assert.equal(after.requests[`${S}finish_batch_v2`], { '200': after.commits.calls });
  assert.ok(after.commits.calls >= 1 && after.commits.calls <= 2);
  assert.equal(after.requests['files/download'], { '200': 1 });

  // One 429 on the next download: retried, then 200.
  await fx.box.setFaults({ rules: [{ kind: 'too_many_requests', routes: ['files/download'], retryAfterSec: 0, count: 1 }] });
  assert.is((await drain(fx.engine.openDownload('alice', '/m/d.bin'))).sha, sha256(data));
  assert.is((await fx.box.faultCounts()).too_many_requests, 1);
  await fx.box.setFaults({ rules: [] });
  assert.equal(fx.engine.stats().requests['files/download'], { '200': 2, '429': 1 });

  const m = await scrape();
  assert.is(m.get(series(`${S}start`, '200')), 2);
  assert.is(m.get(series(`${S}append_v2`, '200')), undefined);
  assert.is(m.get(series(`${S}finish_batch_v2`, '200')), after.commits.calls);
  assert.is(m.get(series('files/download', '200')), 2);
  assert.is(m.get(series('files/download', '429')), 1);
  assert.is([...m.keys()].filter((k) => k.includes('status="0"')).length, 0, 'no request went unanswered');
});

test('main-thread and engine counts of one route and status add up in one series', async () => {
  metrics.dropboxRequests.inc({ route: 'files/download', status: '429' }, 2);
  assert.is((await scrape()).get(series('files/download', '429')), 3);
});

test("the pacer's and the spool's series read the engine's figures", async () => {
  const s = fx.engine.stats();
  const a = s.accounts.alice!;
  const m = await scrape('dropftp_');
  // The first test's 2 starts, its commits and 3 download calls (one answered 429), at least.
  assert.ok(a.callsStarted >= 6, `calls started ${a.callsStarted}`);
  assert.is(m.get('dropftp_engine_calls_started_total{account="alice"}'), a.callsStarted);
  assert.is(m.get('dropftp_engine_call_wait_seconds_total{account="alice"}'), a.waitedMs / 1000);
  assert.ok(a.callsPerSecond >= 1);
  assert.is(m.get('dropftp_engine_call_rate{account="alice"}'), a.callsPerSecond);
  assert.is(m.get('dropftp_engine_calls_in_flight{account="alice"}'), 0);
  assert.is(m.get('dropftp_engine_calls_waiting{account="alice"}'), 0);
  assert.is(m.get('dropftp_engine_retry_after_seconds{account="alice"}'), 0);
  assert.is(m.get('dropftp_engine_write_lock_retries_total{account="alice"}'), a.writeLockRetries);
  assert.is(m.get('dropftp_engine_retry_after_capped_total{account="alice"}'), a.retryAfterCapped);
  assert.ok(s.spool.limitBytes > 0);
  assert.is(m.get('dropftp_spool_limit_bytes'), s.spool.limitBytes);
  assert.is(m.get('dropftp_spool_bytes_in_use'), 0);
  assert.is(m.get('dropftp_spool_bytes_total{kind="spooled"}'), s.spool.spooledBytes);
  assert.is(m.get('dropftp_spool_bytes_total{kind="spilled"}'), s.spool.spilledBytes);
  assert.is(m.get('dropftp_spool_bytes_total{kind="read_back"}'), s.spool.readBackBytes);
  assert.is(m.get('dropftp_spool_spill_failures_total'), 0);
  for (const outcome of ['deleted', 'gone', 'changed', 'failed'] as const) {
    assert.is(m.get(`dropftp_upload_integrity_failures_total{outcome="${outcome}"}`), s.integrityFailures[outcome]);
  }
  assert.is(m.get('dropftp_engine_queued_transfers'), 0);
  // The series the pacer replaced are gone.
  assert.is([...m.keys()].filter((k) => k.startsWith('dropftp_engine_request')).length, 0);
});

test.run();
