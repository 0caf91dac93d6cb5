// 2,000 clients at once, each on its own fresh TCP connection (as FTP data connections are): every
// one is served, none reset or refused (issue 15: listen backlog, timeouts, buffers). Raw HTTP.
import { request } from 'node:http';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { contentHash, type LocalBoxAccount } from '../../src/localbox/index.ts';
import { adminOf } from '../../src/localbox/index.ts';
import { bytes, makeBox, type TestBox } from './helpers.ts';

let t: TestBox;
let acc: LocalBoxAccount;
const CLIENTS = 2000;
const file = bytes(64 * 1024, 77);

test.before(async () => {
  t = await makeBox();
  acc = await t.box.createAccount('storm');
  const r = await t.call('files/upload', acc.accessToken, { arg: { path: '/shared.bin' }, body: file, headers: { 'Content-Type': 'application/octet-stream' } });
  assert.is(r.status, 200);
  await r.text();
});
test.after(async () => {
  await t.cleanup();
});

/** One call on a fresh connection (agent: false): the status and the body, or the socket error's code. */
function fresh(route: string, arg: unknown, body: Buffer | null): Promise<{ status: number; body: Buffer } | { error: string }> {
  return new Promise((resolve) => {
    const req = request(`${t.box.url}/2/${route}`, {
      method: 'POST',
      agent: false,
      headers: {
        Authorization: `Bearer ${acc.accessToken}`,
        'Dropbox-API-Arg': JSON.stringify(arg),
        ...(body ? { 'Content-Type': 'application/octet-stream', 'Content-Length': String(body.length) } : {}),
      },
    });
    req.on('response', (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }));
      res.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    req.end(body ?? undefined);
  });
}

test(`${CLIENTS} concurrent fresh connections (half downloads, half uploads): all served, none reset`, async () => {
  await t.admin('POST', 'calls/reset');
  const results = await Promise.all(
    Array.from({ length: CLIENTS }, (_, i) =>
      i % 2 === 0 ? fresh('files/download', { path: '/shared.bin' }, null) : fresh('files/upload', { path: `/up/${i}.bin`, mode: 'overwrite' }, bytes(4096, i)),
    ),
  );
  const errors = results.filter((r): r is { error: string } => 'error' in r);
  assert.equal(errors.slice(0, 5), [], `${errors.length} of ${CLIENTS} failed`);
  results.forEach((r, i) => {
    const ok = r as { status: number; body: Buffer };
    assert.is(ok.status, 200, `client ${i}`);
    if (i % 2 === 0) assert.ok(ok.body.equals(file), `download ${i}`);
    else assert.is((JSON.parse(ok.body.toString()) as { content_hash: string }).content_hash, contentHash(bytes(4096, i)));
  });
  const calls = await adminOf(t.box).calls();
  assert.equal(calls.routes['files/download'], { calls: CLIENTS / 2, status: { '200': CLIENTS / 2 } });
  assert.equal(calls.routes['files/upload'], { calls: CLIENTS / 2, status: { '200': CLIENTS / 2 } });
});

test.run();
