// The whole service with its admin listener, driven through FTP by basic-ftp: after known traffic
// (3 logins ok, 1 failed, 2 STOR and 1 RETR of known sizes, one MKD) /metrics holds exactly those
// counts and bytes, the engine, token and Dropbox request series are there, and /healthz says 200.
// Then the embedded box expires every access token: the next metadata call (MKD) is refreshed once
// and goes on, and new transfers run with the new token. Last, the box dies: /healthz turns 503.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { Client } from 'basic-ftp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'undici';
import { adminOf } from '../../src/localbox/index.ts';
import { startDropftp, type Dropftp } from '../../src/server.ts';
import { parseExposition, samplesOf } from './exposition.ts';

let dir = '';
let service: Dropftp;
let base = '';

async function scrape(): Promise<Map<string, number>> {
  const res = await request(`${base}/metrics`);
  assert.is(res.statusCode, 200);
  assert.is(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  // Strict: one TYPE per family, valid names, labels and values, histograms consistent.
  return samplesOf(parseExposition(await res.body.text()));
}

async function login(): Promise<Client> {
  const client = new Client(20_000);
  await client.access({ host: '127.0.0.1', port: service.port, user: service.createdUser!.name, password: service.createdUser!.password });
  return client;
}

async function download(client: Client, path: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await client.downloadTo(new Writable({ write: (chunk: Buffer, _e, cb) => (chunks.push(chunk), cb()) }), path);
  return Buffer.concat(chunks);
}

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dropftp-metrics-'));
  service = await startDropftp({ dataDir: dir, host: '127.0.0.1', port: 0, engineWorkers: 1, admin: { host: '127.0.0.1', port: 0 } });
  assert.ok(service.admin, 'admin listener started');
  base = `http://127.0.0.1:${service.admin!.port}`;
});

test.after(async () => {
  await service?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('/metrics after known traffic: connections, logins, transfers, bytes, durations', async () => {
  const small = Buffer.alloc(1000, 1);
  const big = Buffer.alloc(300_000, 2);
  const a = await login();
  await a.uploadFrom(Readable.from([small]), 'small.bin');
  await a.uploadFrom(Readable.from([big]), 'big.bin');
  const b = await login();
  assert.ok((await download(b, 'big.bin')).equals(big));
  const c = await login();
  await c.ensureDir('/made');
  const d = new Client(20_000);
  try {
    await d.access({ host: '127.0.0.1', port: service.port, user: service.createdUser!.name, password: 'wrong password' });
    assert.unreachable('bad password accepted');
  } catch (err) {
    assert.match(String((err as Error).message), /530/);
  } finally {
    d.close();
  }
  for (const client of [a, b, c]) client.close();
  // The server sees the three quits a moment later.
  let m = await scrape();
  for (let i = 0; i < 50 && m.get('dropftp_ftp_connections') !== 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    m = await scrape();
  }

  assert.is(m.get('dropftp_ftp_connections_total'), 4);
  assert.is(m.get('dropftp_ftp_connections'), 0);
  assert.is(m.get('dropftp_ftp_logins_total{result="ok"}'), 3);
  assert.is(m.get('dropftp_ftp_logins_total{result="failed"}'), 1);
  assert.is(m.get('dropftp_ftp_transfers_total{direction="upload",result="ok"}'), 2);
  assert.is(m.get('dropftp_ftp_transfers_total{direction="download",result="ok"}'), 1);
  assert.is(m.get('dropftp_ftp_transfer_bytes_total{direction="upload"}'), small.length + big.length);
  assert.is(m.get('dropftp_ftp_transfer_bytes_total{direction="download"}'), big.length);
  assert.is(m.get('dropftp_ftp_transfer_duration_seconds_count{direction="upload"}'), 2);
  assert.is(m.get('dropftp_ftp_transfer_duration_seconds_bucket{le="+Inf",direction="download"}'), 1);
  assert.ok(m.get('dropftp_ftp_transfer_duration_seconds_sum{direction="upload"}')! > 0);
  assert.is(m.get('dropftp_commit_batch_entries_total'), 2);
  assert.ok(m.get('dropftp_commit_batches_total')! >= 1);
  assert.is(m.get('dropftp_commit_batch_size_sum'), 2);
  assert.is(m.get('dropftp_commit_batch_size_count'), m.get('dropftp_commit_batches_total'));
  assert.is(m.get('dropftp_dropbox_requests_total{route="files/create_folder_v2",status="200"}'), 1);
  assert.is(m.get('dropftp_token_refreshes_total{account="local",reason="start",result="ok"}'), 1);
  assert.is(m.get('dropftp_dropbox_requests_total{route="oauth2/token",status="200"}'), 1);
  assert.is(m.get('dropftp_dropbox_rate_limited_total{source="rpc"}'), 0);
  assert.is(m.get('dropftp_worker_threads'), 1);
  assert.ok(m.get('dropftp_memory_budget_bytes')! > 0);
  assert.is(m.get('dropftp_memory_ring_bytes_in_use'), 0);
  assert.ok(m.get('dropftp_memory_ring_bytes_pooled')! >= 0, 'pooled rings are reported');
  const utilization = m.get('dropftp_worker_utilization_ratio')!;
  assert.ok(utilization >= 0 && utilization <= 1, `worker utilisation ${utilization}`);
  // prom-client's default series, under the names Node.js dashboards expect.
  assert.ok(m.get('nodejs_eventloop_lag_p99_seconds')! >= 0);
  assert.ok(m.get('process_resident_memory_bytes')! > 10_000_000);
  assert.ok(m.get('process_cpu_seconds_total')! > 0);
  // The one worker thread published its own V8 heap (a worker's heap holds at least its modules).
  const heap = (kind: string) => [...m].filter(([series]) => series.startsWith('dropftp_worker_heap_bytes{') && series.includes(`kind="${kind}"`)).map(([, v]) => v);
  assert.is(heap('used').length, 1);
  assert.ok(heap('used')[0]! > 1_000_000 && heap('total')[0]! >= heap('used')[0]!, `worker heap used ${heap('used')[0]} total ${heap('total')[0]}`);

  const health = await request(`${base}/healthz`);
  assert.is(health.statusCode, 200);
  assert.equal(await health.body.json(), { status: 'ok', checks: { ftp: 'ok', 'account:local': 'ok' } });
});

test('expired access tokens mid-run: one refresh, MKD goes on, new STOR and RETR use the new token', async () => {
  const before = await scrape();
  const client = await login();
  await adminOf(service.box).adminCall('POST', 'expire-tokens', { account: 'local' });
  await client.ensureDir('/after-expiry');
  const data = Buffer.alloc(50_000, 3);
  await client.uploadFrom(Readable.from([data]), 'after.bin');
  assert.ok((await download(client, 'after.bin')).equals(data));
  client.close();
  const m = await scrape();
  assert.is(m.get('dropftp_token_refreshes_total{account="local",reason="expired_access_token",result="ok"}'), 1);
  assert.is(m.get('dropftp_dropbox_requests_total{route="oauth2/token",status="200"}'), 2, 'one token request for the expiry');
  const unauthorized = [...m].filter(([k]) => k.startsWith('dropftp_dropbox_requests_total{') && k.includes('status="401"'));
  assert.ok(unauthorized.length >= 1, 'some RPC call met the expired token');
  assert.is(m.get('dropftp_dropbox_requests_total{route="files/create_folder_v2",status="200"}'), before.get('dropftp_dropbox_requests_total{route="files/create_folder_v2",status="200"}')! + 1);
  assert.is(m.get('dropftp_ftp_transfers_total{direction="upload",result="ok"}'), 3);
  assert.is(m.get('dropftp_ftp_transfers_total{direction="download",result="ok"}'), 2);
});

test('/healthz is 503 naming the account once the storage backend stops answering', async () => {
  service.box.kill();
  await adminOf(service.box).waitExit();
  let status = 0;
  let body: { status?: string; checks?: Record<string, string> } = {};
  // Probes are cached for 5 s: poll until the next probe sees the dead backend.
  for (let i = 0; i < 40 && status !== 503; i++) {
    const res = await request(`${base}/healthz`);
    status = res.statusCode;
    body = (await res.body.json()) as typeof body;
    if (status !== 503) await new Promise((resolve) => setTimeout(resolve, 250));
  }
  assert.is(status, 503);
  assert.is(body.status, 'unavailable');
  assert.is(body.checks!.ftp, 'ok');
  assert.is.not(body.checks!['account:local'], 'ok');
});

test.run();
