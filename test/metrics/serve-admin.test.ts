// `dropftp serve --admin HOST:PORT` as a real process: the admin listener answers /healthz and
// /metrics on its own port (never on the FTP port), and it is off without the flag. `curl /metrics`
// read by a strict text-format parser holds prom-client's process and Node.js series and every
// series the README's "Metrics and health" list names.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'undici';
import { parseExposition } from './exposition.ts';

const BIN = fileURLToPath(new URL('../../bin/dropftp.mjs', import.meta.url));
const README = fileURLToPath(new URL('../../README.md', import.meta.url));

/** Every metric family the README's "Metrics and health" list names (its "- " items). */
function readmeSeries(): string[] {
  const text = readFileSync(README, 'utf8');
  const section = text.slice(text.indexOf('### Metrics and health'), text.indexOf('### Lifecycle'));
  const list = section.split('\n').filter((line) => /^(- |  )/.test(line)).join('\n');
  return [...new Set([...list.matchAll(/`((?:dropftp|process|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1]!))];
}

/** GET with curl, as an operator would (headers and body). */
function curl(url: string): Promise<{ contentType: string; body: string }> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '--fail', '-D', '-', url], { maxBuffer: 16 << 20 }, (err, stdout) => {
      if (err) return reject(err);
      const split = stdout.indexOf('\r\n\r\n');
      const head = stdout.slice(0, split);
      resolve({ contentType: /^content-type: (.*)$/im.exec(head)?.[1]?.trim() ?? '', body: stdout.slice(split + 4) });
    });
  });
}

interface Served {
  child: ChildProcess;
  ftpPort: number;
  admin: string | null;
  exited: Promise<number | null>;
}

/** Starts `dropftp serve ARGS` and waits for its JSON start line (stdout or stderr). */
async function serve(dataDir: string, args: string[]): Promise<Served> {
  const child = spawn(process.execPath, [BIN, 'serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let text = '';
  const start = await new Promise<{ listen: string; admin?: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start line: ${text}`)), 30_000);
    const look = (d: Buffer): void => {
      text += d;
      for (const line of text.split('\n')) {
        if (!line.startsWith('{')) continue;
        const record = JSON.parse(line) as { event?: string; listen?: string; admin?: string };
        if (record.event === 'start' && record.listen) {
          clearTimeout(timer);
          resolve(record as { listen: string; admin?: string });
        }
      }
    };
    child.stdout!.on('data', look);
    child.stderr!.on('data', look);
    void exited.then((code) => reject(new Error(`serve exited ${code}: ${text}`)));
  });
  return { child, ftpPort: Number(new URL(start.listen).port), admin: start.admin ?? null, exited };
}

async function stop(served: Served): Promise<void> {
  served.child.kill('SIGTERM');
  assert.is(await served.exited, 0);
}

test('--admin opens /healthz and /metrics on their own port; no flag, no listener', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dropftp-serve-admin-'));
  try {
    const on = await serve(join(dir, 'a'), ['--admin', '127.0.0.1:0', '--log-format', 'json']);
    try {
      assert.ok(on.admin, 'start line names the admin listener');
      const admin = new URL(on.admin!);
      assert.is.not(Number(admin.port), on.ftpPort);
      const health = await request(`${on.admin}/healthz`);
      assert.is(health.statusCode, 200);
      assert.is(((await health.body.json()) as { status: string }).status, 'ok');
      const metrics = await request(`${on.admin}/metrics`);
      assert.is(metrics.statusCode, 200);
      const text = await metrics.body.text();
      assert.match(text, /^dropftp_ftp_connections 0$/m);
      assert.match(text, /^dropftp_token_refreshes_total\{account="local",reason="start",result="ok"\} 1$/m);

      const scraped = await curl(`${on.admin}/metrics`);
      assert.is(scraped.contentType, 'text/plain; version=0.0.4; charset=utf-8');
      const families = parseExposition(scraped.body);
      const listed = readmeSeries();
      assert.ok(listed.length >= 30, `README lists ${listed.length} series`);
      for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', ...listed]) {
        assert.ok(families.has(name), `/metrics has no ${name}`);
      }
      assert.is(families.get('process_cpu_seconds_total')!.type, 'counter');
      assert.ok(families.get('process_resident_memory_bytes')!.samples.get('process_resident_memory_bytes')! > 10_000_000);
      assert.is(families.get('nodejs_eventloop_lag_seconds')!.type, 'gauge');
      assert.is(families.get('dropftp_ftp_transfer_duration_seconds')!.type, 'histogram');
    } finally {
      await stop(on);
    }
    const off = await serve(join(dir, 'b'), ['--log-format', 'json']);
    try {
      assert.is(off.admin, null);
      // The service is up all the same: its FTP greeting.
      const greeting = await new Promise<string>((resolve, reject) => {
        const socket = connect(off.ftpPort, '127.0.0.1');
        socket.once('data', (d) => (socket.destroy(), resolve(String(d))));
        socket.once('error', reject);
      });
      assert.match(greeting, /^220 /);
    } finally {
      await stop(off);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
