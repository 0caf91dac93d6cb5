// Bad answers from the backend, injected on the wire by the local box (faults.ts): a malformed
// answer (download, start, append, finish_batch_v2), a Retry-After far beyond
// engine.maxRetryAfterSec, a Range answer that starts elsewhere (after a reset mid-download), a
// download body shorter or longer than its Dropbox-API-Result promises. Each transfer hit ends with
// a clear FTP error or is retried invisibly; a 226 always means identical bytes delivered or
// stored, an error means nothing committed (the old version stays); the transfers running beside
// it are unaffected. The whole service (startDropftp), three transfers at a time.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startDropftp, type Dropftp } from '../../src/server.ts';
import type { FaultRule } from '../../src/localbox/types.ts';
import { RawFtp, download, upload, type Reply } from '../ftp/helpers/raw-client.ts';
import { BoxView } from '../reliability/helpers.ts';
import { MiB, makePool, sha256 } from './helpers.ts';

let service: Dropftp;
let dataDir: string;
let view: BoxView;
const files = ['a', 'b', 'c'].map((n, i) => ({ path: `/bad/${n}.bin`, data: makePool(3 * MiB + 17 * i, 300 + i) }));

test.before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'dropftp-bad-backend-'));
  // 1 MiB of memory retention and no spool: a 3 MiB STOR is a start and appends, then a batch entry.
  service = await startDropftp({ dataDir, host: '127.0.0.1', port: 0, engineWorkers: 2, engine: { spoolBytes: 0, appendMemoryBytes: 1 * MiB, maxRetryAfterSec: 1 } });
  view = await BoxView.open(service.box.url, dataDir);
  const c = await client();
  for (const f of files) assert.is((await upload(c, `STOR ${f.path}`, f.data)).final.code, 226);
  c.close();
});
test.after(async () => {
  await service.box.setFaults({ rules: [] }).catch(() => {});
  await service.close();
  await rm(dataDir, { recursive: true, force: true });
});

async function client(): Promise<RawFtp> {
  const c = await RawFtp.connect(service.port);
  await c.login(service.createdUser!.name, service.createdUser!.password);
  await c.cmd('TYPE I');
  return c;
}

/** Runs `each` for the three files at once under `rules`; returns the replies and how many faults fired. */
async function underFaults<T extends { final: Reply }>(rules: FaultRule[], each: (c: RawFtp, i: number) => Promise<T>): Promise<{ results: T[]; fired: number }> {
  const clients = await Promise.all(files.map(() => client()));
  const total = async (): Promise<number> => Object.values(await service.box.faultCounts()).reduce((a, b) => a + b, 0);
  const before = await total();
  await service.box.setFaults({ rules });
  try {
    const results = await Promise.all(clients.map((c, i) => each(c, i)));
    return { results, fired: (await total()) - before };
  } finally {
    await service.box.setFaults({ rules: [] });
    for (const c of clients) c.close();
  }
}

function clearError(final: Reply, label: string): void {
  assert.ok(final.code >= 400 && final.code < 600, `${label}: ${final.text}`);
  assert.ok(final.text.length > 4, `${label}: the reply says why`);
}

const downloadCases: Array<[string, FaultRule[]]> = [
  ['a malformed answer', [{ kind: 'malformed', routes: ['files/download'], count: 1 }]],
  ['a body shorter than promised', [{ kind: 'short_body', routes: ['files/download'], bytes: 100_000, count: 1 }]],
  ['a body longer than promised', [{ kind: 'long_body', routes: ['files/download'], bytes: 5, count: 1 }]],
  ['a Range answer that starts elsewhere (after a reset)', [{ kind: 'reset', routes: ['files/download'], afterBytes: 1 * MiB, count: 1 }, { kind: 'range_shift', routes: ['files/download'], bytes: 4096, count: 1 }]],
  ['a Retry-After beyond engine.maxRetryAfterSec', [{ kind: 'too_many_requests', routes: ['files/download'], retryAfterSec: 100_000, count: 1 }]],
];

for (const [name, rules] of downloadCases) {
  test(`RETR under ${name}: a clear error or identical bytes, the others unaffected`, async () => {
    const started = Date.now();
    const { results, fired } = await underFaults(rules, (c, i) => download(c, `RETR ${files[i]!.path}`));
    assert.is(fired, rules.length, `every rule fired once (${name})`);
    let complete = 0;
    results.forEach(({ final, data }, i) => {
      if (final.code === 226) {
        assert.is(sha256(data), sha256(files[i]!.data), `${files[i]!.path}: 226 with other bytes (${data.length} B)`);
        complete++;
      } else clearError(final, `${files[i]!.path} (${name})`);
    });
    assert.ok(complete >= files.length - 1, `the transfers beside the faulted one completed (${complete}/${files.length}): ${results.map((r) => r.final.text).join(' | ')}`);
    if (rules[0]!.kind === 'too_many_requests') {
      assert.is(complete, files.length, 'a capped Retry-After is waited and retried');
      assert.ok(Date.now() - started < 15_000, `capped: ${Date.now() - started} ms`);
    }
  });
}

const uploadCases: Array<[string, FaultRule[]]> = [
  ['a malformed answer to upload_session/start', [{ kind: 'malformed', routes: ['files/upload_session/start'], count: 1 }]],
  ['a malformed answer to append_v2', [{ kind: 'malformed', routes: ['files/upload_session/append_v2'], count: 1 }]],
  ['a malformed answer to finish_batch_v2', [{ kind: 'malformed', routes: ['files/upload_session/finish_batch_v2'], count: 1 }]],
  ['a Retry-After beyond engine.maxRetryAfterSec', [{ kind: 'too_many_requests', routes: ['files/upload_session/start'], retryAfterSec: 100_000, count: 1 }]],
];

let round = 0;
for (const [name, rules] of uploadCases) {
  test(`STOR under ${name}: 226 with identical bytes stored, or a clear error and the old version kept`, async () => {
    round++;
    const started = Date.now();
    const olds = await Promise.all(files.map((f) => view.download(f.path)));
    const news = files.map((f, i) => makePool(3 * MiB + 1000 * round + i, 1000 * round + i));
    const { results, fired } = await underFaults(rules, (c, i) => upload(c, `STOR ${files[i]!.path}`, news[i]!));
    assert.is(fired, rules.length, `the rule fired (${name})`);
    let complete = 0;
    for (let i = 0; i < files.length; i++) {
      const { final } = results[i]!;
      const stored = await view.download(files[i]!.path);
      if (final.code === 226) {
        assert.is(stored && sha256(stored), sha256(news[i]!), `${files[i]!.path}: 226 but the store holds other bytes`);
        complete++;
      } else {
        clearError(final, `${files[i]!.path} (${name})`);
        assert.is(stored && sha256(stored), sha256(olds[i]!), `${files[i]!.path}: failed, yet its old version was replaced`);
      }
      files[i]!.data = stored!;
    }
    assert.ok(complete >= files.length - 1, `the transfers beside the faulted one completed (${complete}/${files.length})`);
    if (rules[0]!.kind === 'too_many_requests') {
      assert.is(complete, files.length, 'a capped Retry-After is waited and retried');
      assert.ok(Date.now() - started < 15_000, `capped: ${Date.now() - started} ms`);
    }
  });
}

test('after the bad answers: a clean round trip of every file', async () => {
  const c = await client();
  try {
    for (const f of files) {
      const got = await download(c, `RETR ${f.path}`);
      assert.is(got.final.code, 226, got.final.text);
      assert.is(sha256(got.data), sha256(f.data));
    }
  } finally {
    c.close();
  }
});

test.run();
