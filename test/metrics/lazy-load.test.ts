// A service started without the admin listener never loads prom-client (nor @opentelemetry/api,
// which it requires): ~80 files and tens of ms of start-up an idle gateway does not need (issue 16).
// Its counters still count. (Every series with the listener: scrape.test.ts, serve-admin.test.ts.)

import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startDropftp } from '../../src/server.ts';

test('a service without the admin listener starts without prom-client, and counts its logins', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dropftp-lazy-metrics-'));
  const service = await startDropftp({ dataDir: dir, host: '127.0.0.1', port: 0, engineWorkers: 1 });
  try {
    const loaded = Object.keys(createRequire(import.meta.url).cache).map((file) => file.replaceAll('\\', '/'));
    assert.equal(loaded.filter((file) => /\/node_modules\/(prom-client|@opentelemetry\/api)\//.test(file)), []);
    assert.is(service.metrics.logins.get({ result: 'ok' }), 0);
    service.metrics.login(true);
    assert.is(service.metrics.logins.get({ result: 'ok' }), 1);
  } finally {
    await service.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
