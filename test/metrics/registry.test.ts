// The metrics registry's text format (Prometheus exposition 0.0.4) and the admin listener: exact
// lines for counters, histograms and collected values, label escaping, one HELP/TYPE per metric;
// /metrics, /healthz (200/503 with the failing part, cached), 404 and 405 over real HTTP.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'undici';
import { AdminServer, type HealthReport } from '../../src/metrics/admin-server.ts';
import { Registry } from '../../src/metrics/registry.ts';

test('counters, histograms and collected gauges render in the text format', () => {
  const r = new Registry();
  const c = r.counter('t_requests_total', 'Requests.');
  c.inc({ route: 'files/list_folder', status: '200' });
  c.inc({ route: 'files/list_folder', status: '200' }, 2);
  c.inc({ status: '429', route: 'files/list_folder' }); // label order does not make a new series
  c.inc({ route: 'a"b\\c\nd', status: '0' });
  c.inc({ route: 'x', status: '1' }, -5); // ignored: counters never go down
  const h = r.histogram('t_duration_seconds', 'Durations.', [1, 0.1]);
  h.observe({ direction: 'upload' }, 0.05);
  h.observe({ direction: 'upload' }, 0.5);
  h.observe({ direction: 'upload' }, 3);
  r.gauge('t_in_use_bytes', 'In use.', () => 42);
  r.gauge('t_per_account', 'Per account.', () => [{ labels: { account: 'a' }, value: 1 }, { labels: { account: 'b' }, value: 2.5 }]);
  r.gauge('t_broken', 'Throws.', () => {
    throw new Error('closed');
  });
  const text = r.render();
  assert.is(
    text,
    [
      '# HELP t_requests_total Requests.',
      '# TYPE t_requests_total counter',
      't_requests_total{route="files/list_folder",status="200"} 3',
      't_requests_total{status="429",route="files/list_folder"} 1',
      't_requests_total{route="a\\"b\\\\c\\nd",status="0"} 1',
      '# HELP t_duration_seconds Durations.',
      '# TYPE t_duration_seconds histogram',
      't_duration_seconds_bucket{direction="upload",le="0.1"} 1',
      't_duration_seconds_bucket{direction="upload",le="1"} 2',
      't_duration_seconds_bucket{direction="upload",le="+Inf"} 3',
      't_duration_seconds_sum{direction="upload"} 3.55',
      't_duration_seconds_count{direction="upload"} 3',
      '# HELP t_in_use_bytes In use.',
      '# TYPE t_in_use_bytes gauge',
      't_in_use_bytes 42',
      '# HELP t_per_account Per account.',
      '# TYPE t_per_account gauge',
      't_per_account{account="a"} 1',
      't_per_account{account="b"} 2.5',
      '',
    ].join('\n'),
  );
  assert.is(c.get({ status: '200', route: 'files/list_folder' }), 3);
  assert.throws(() => r.counter('t_requests_total', 'again'), /twice/);
  assert.throws(() => r.counter('bad-name', 'x'), /bad metric name/);
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
