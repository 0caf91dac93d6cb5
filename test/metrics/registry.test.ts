// The metrics registry (over prom-client) and the admin listener: counters merged with counts read at
// scrape time, histograms and gauges, label escaping, all read back by a strict text-format parser;
// /metrics, /healthz (200/503 with the failing part, cached), 404 and 405 over real HTTP.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'undici';
import { AdminServer, type HealthReport } from '../../src/metrics/admin-server.ts';
import { Registry } from '../../src/metrics/registry.ts';
import { parseExposition, samplesOf } from './exposition.ts';

test('counters, histograms and values read at scrape time, through prom-client, in the strict text format', async () => {
  const r = new Registry();
  const c = r.counter('t_requests_total', 'Requests.', ['route', 'status']);
  c.inc({ route: 'files/list_folder', status: '200' });
  c.inc({ route: 'files/list_folder', status: '200' }, 2);
  c.inc({ status: '429', route: 'files/list_folder' }); // label order does not make a new series
  c.inc({ route: 'a"b\\c\nd', status: '0' });
  c.inc({ route: 'x', status: '1' }, -5); // ignored: counters never go down
  let engine = 4;
  c.collect(() => [{ labels: { route: 'files/list_folder', status: '200' }, value: engine }]);
  c.collect(() => {
    throw new Error('closed');
  });
  const h = r.histogram('t_duration_seconds', 'Durations.', [1, 0.1], ['direction']);
  h.observe({ direction: 'upload' }, 0.05);
  h.observe({ direction: 'upload' }, 0.5);
  h.observe({ direction: 'upload' }, 3);
  r.gauge('t_in_use_bytes', 'In use.', () => 42);
  r.gauge('t_per_account', 'Per account.', () => [{ labels: { account: 'a' }, value: 1 }, { labels: { account: 'b' }, value: 2.5 }], ['account']);
  r.gauge('t_broken', 'Throws.', () => {
    throw new Error('closed');
  }, ['account']);
  r.counterFrom('t_engine_total', 'Kept elsewhere.', () => engine);
  const text = await r.metrics();
  const m = samplesOf(parseExposition(text));
  assert.equal(Object.fromEntries(m), {
    't_requests_total{route="files/list_folder",status="200"}': 7,
    't_requests_total{route="files/list_folder",status="429"}': 1,
    't_requests_total{route="a\\"b\\\\c\\nd",status="0"}': 1,
    't_duration_seconds_bucket{le="0.1",direction="upload"}': 1,
    't_duration_seconds_bucket{le="1",direction="upload"}': 2,
    't_duration_seconds_bucket{le="+Inf",direction="upload"}': 3,
    't_duration_seconds_sum{direction="upload"}': 3.55,
    't_duration_seconds_count{direction="upload"}': 3,
    t_in_use_bytes: 42,
    't_per_account{account="a"}': 1,
    't_per_account{account="b"}': 2.5,
    t_engine_total: 4,
  });
  assert.match(text, '# TYPE t_duration_seconds histogram\n');
  assert.match(text, '# TYPE t_engine_total counter\n');
  assert.match(text, '# HELP t_requests_total Requests.\n');
  // Read again at the next scrape.
  engine = 6;
  const again = samplesOf(parseExposition(await r.metrics()));
  assert.is(again.get('t_requests_total{route="files/list_folder",status="200"}'), 9);
  assert.is(again.get('t_engine_total'), 6);
  assert.is(c.get({ status: '200', route: 'files/list_folder' }), 3);
  assert.throws(() => r.counter('t_requests_total', 'again'), /already been registered/);
  assert.throws(() => r.counter('bad-name', 'x'), /Invalid metric name/);
});

test('a NaN sample is written NaN, as the text format spells it (prom-client writes Nan)', async () => {
  const r = new Registry();
  r.gauge('t_unknown', 'No data yet.', () => NaN);
  r.gauge('t_per_thread', 'Per thread.', () => [{ labels: { thread: 'Nan' }, value: NaN }, { labels: { thread: 'b' }, value: 1 }], ['thread']);
  const text = await r.metrics();
  assert.ok(text.includes('\nt_unknown NaN\n'), text);
  assert.ok(text.includes('\nt_per_thread{thread="Nan"} NaN\n'), text);
  const m = samplesOf(parseExposition(text));
  assert.ok(Number.isNaN(m.get('t_unknown')));
  assert.ok(Number.isNaN(m.get('t_per_thread{thread="Nan"}')));
  assert.is(m.get('t_per_thread{thread="b"}'), 1);
});

test('the strict parser rejects what Prometheus would', () => {
  for (const bad of [
    'x 1', // no final newline
    'x{a="1"} 1\nx{a="1"} 2\n', // duplicate series
    '# TYPE x counter\n# TYPE x counter\nx 1\n', // TYPE twice
    '# TYPE x counter\nx 1\ny 1\n# HELP x again\n', // described again after its samples
    'x{a="1"} 1\ny 1\nx{a="2"} 1\n', // samples of one family apart
    'x{a=1} 1\n', // unquoted label value
    'x 1 2 3\n',
    'x one\n',
    '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="0.5"} 1\nh_bucket{le="+Inf"} 2\nh_count 2\n', // not ascending
    '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 3\nh_count 2\n', // count disagrees
  ]) {
    assert.throws(() => parseExposition(bad), undefined, bad);
  }
});

test('admin listener: /metrics, /healthz (cached, 503 naming the failing part), 404, 405', async () => {
  let healthy = true;
  let probes = 0;
  const admin = new AdminServer({
    host: '127.0.0.1',
    port: 0,
    metrics: () => 'x_total 1\n',
    health: async (): Promise<HealthReport> => {
      probes++;
      return healthy ? { ok: true, checks: { ftp: 'ok' } } : { ok: false, checks: { ftp: 'ok', 'account:local': 'connect ECONNREFUSED' } };
    },
    healthCacheMs: 200,
  });
  const { port } = await admin.listen();
  const base = `http://127.0.0.1:${port}`;
  try {
    const m = await request(`${base}/metrics`);
    assert.is(m.statusCode, 200);
    assert.match(String(m.headers['content-type']), 'text/plain; version=0.0.4');
    assert.is(await m.body.text(), 'x_total 1\n');

    const h1 = await request(`${base}/healthz`);
    assert.is(h1.statusCode, 200);
    assert.equal(await h1.body.json(), { status: 'ok', checks: { ftp: 'ok' } });
    healthy = false;
    const cached = await request(`${base}/healthz`);
    assert.is(cached.statusCode, 200, 'within the cache time the last probe answers');
    await cached.body.dump();
    assert.is(probes, 1);
    await new Promise((resolve) => setTimeout(resolve, 250));
    const h2 = await request(`${base}/healthz`);
    assert.is(h2.statusCode, 503);
    assert.equal(await h2.body.json(), { status: 'unavailable', checks: { ftp: 'ok', 'account:local': 'connect ECONNREFUSED' } });

    const missing = await request(`${base}/nope`);
    assert.is(missing.statusCode, 404);
    await missing.body.dump();
    const post = await request(`${base}/metrics`, { method: 'POST', body: 'x' });
    assert.is(post.statusCode, 405);
    await post.body.dump();
  } finally {
    await admin.close();
  }
});

test.run();
