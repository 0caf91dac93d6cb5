// The box's pooled and queued I/O: downloads read into buffers lent from a shared pool (given back
// only once the socket took their bytes) stay byte-exact with slow, fast and vanishing readers at
// once; uploads queued in batches land byte-exact with the right content_hash; an append's own
// content_hash is checked from its block hashes (concurrent session) without a second pass.
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { contentHash, type LocalBoxAccount } from '../../src/localbox/index.ts';
import { bytes, makeBox, type TestBox } from './helpers.ts';

const MiB = 1024 * 1024;
let t: TestBox;
let acc: LocalBoxAccount;
const files = [bytes(9 * MiB + 4321, 21), bytes(6 * MiB + 1, 22), bytes(3 * MiB + 999, 23)];

test.before(async () => {
  t = await makeBox();
  acc = await t.box.createAccount('pool');
});
test.after(async () => {
  await t.cleanup();
});

/** files/download of `path` (optionally a range); `slowMs` pauses the reader after each chunk; `abortAfter` bytes cuts it. */
function download(path: string, opts: { range?: string; slowMs?: number; abortAfter?: number } = {}): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const url = new URL(`${t.box.url}/2/files/download`);
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        agent: false,
        headers: { Authorization: `Bearer ${acc.accessToken}`, 'Dropbox-API-Arg': JSON.stringify({ path }), ...(opts.range ? { Range: opts.range } : {}) },
      },
      (res) => {
        const parts: Buffer[] = [];
        let got = 0;
        res.on('data', (c: Buffer) => {
          parts.push(c);
          got += c.length;
          if (opts.abortAfter !== undefined && got >= opts.abortAfter) {
            req.destroy();
            resolve(null);
            return;
          }
          if (opts.slowMs) {
            res.pause();
            setTimeout(() => res.resume(), opts.slowMs);
          }
        });
        res.on('end', () => resolve(Buffer.concat(parts)));
        res.on('error', (err) => (opts.abortAfter !== undefined ? resolve(null) : reject(err)));
      },
    );
    req.on('error', (err) => (opts.abortAfter !== undefined ? resolve(null) : reject(err)));
    req.end();
  });
}

function upload(path: string, data: Buffer, chunkBytes: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const url = new URL(`${t.box.url}/2/files/upload`);
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        agent: false,
        headers: { Authorization: `Bearer ${acc.accessToken}`, 'Dropbox-API-Arg': JSON.stringify({ path, mode: 'overwrite' }), 'Content-Type': 'application/octet-stream', 'Content-Length': String(data.length) },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(parts).toString() }));
      },
    );
    req.on('error', reject);
    let pos = 0;
    const step = (): void => {
      while (pos < data.length) {
        const c = data.subarray(pos, pos + chunkBytes);
        pos += c.length;
        if (!req.write(c)) {
          req.once('drain', step);
          return;
        }
      }
      req.end();
    };
    step();
  });
}

test('concurrent uploads in odd chunk sizes land byte-exact with the right content_hash', async () => {
  const results = await Promise.all(files.map((f, i) => upload(`/f${i}.bin`, f, [65_536, 1_000_003, 333_333][i]!)));
  results.forEach((r, i) => {
    assert.is(r.status, 200, r.body);
    assert.is((JSON.parse(r.body) as { content_hash: string }).content_hash, contentHash(files[i]!));
  });
});

test('slow, fast and vanishing downloads at once, twice over (recycled buffers): every byte right', async () => {
  for (let round = 0; round < 2; round++) {
    const jobs: Promise<void>[] = [];
    for (let c = 0; c < 24; c++) {
      const i = c % files.length;
      const f = files[i]!;
      if (c % 8 === 7) {
        jobs.push(download(`/f${i}.bin`, { abortAfter: 300_000 }).then(() => undefined));
      } else if (c % 4 === 1) {
        // across the first block boundary, from the middle of a block
        const from = Math.min(4 * MiB, f.length) - 12345;
        const to = Math.min(f.length - 1, from + 2 * MiB);
        jobs.push(download(`/f${i}.bin`, { range: `bytes=${from}-${to}`, slowMs: 2 }).then((b) => assert.ok(b!.equals(f.subarray(from, to + 1)), `range client ${c}`)));
      } else {
        jobs.push(download(`/f${i}.bin`, c % 2 === 0 ? { slowMs: 3 } : {}).then((b) => assert.ok(b!.equals(f), `client ${c} (file ${i})`)));
      }
    }
    await Promise.all(jobs);
  }
});

test('a lone download (four 1 MiB reads ahead) is byte-exact, slow or fast, whole or from inside a block', async () => {
  const f = files[0]!;
  assert.ok((await download('/f0.bin'))!.equals(f));
  assert.ok((await download('/f0.bin', { slowMs: 5 }))!.equals(f));
  const from = 4 * MiB - 7;
  assert.ok((await download('/f0.bin', { range: `bytes=${from}-` }))!.equals(f.subarray(from)));
});

test('the box child runs with its heap flags (a 64 MiB starting old generation)', () => {
  const argv = readFileSync(`/proc/${t.box.pid}/cmdline`, 'utf8').split('\0');
  assert.ok(argv.includes('--initial-old-space-size=64'), argv.join(' '));
});

test("a concurrent session's append content_hash is checked from its blocks", async () => {
  const data = bytes(8 * MiB + 10, 24);
  const start = await t.call('files/upload_session/start', acc.accessToken, { arg: { session_type: { '.tag': 'concurrent' } }, body: '', headers: { 'Content-Type': 'application/octet-stream' } });
  const id = ((await start.json()) as { session_id: string }).session_id;
  const append = (offset: number, part: Buffer, hash: string, close = false): Promise<Response> =>
    t.call('files/upload_session/append_v2', acc.accessToken, { arg: { cursor: { session_id: id, offset }, content_hash: hash, close }, body: part, headers: { 'Content-Type': 'application/octet-stream' } });
  const first = data.subarray(0, 8 * MiB);
  const bad = await append(0, first, contentHash(data.subarray(0, 8 * MiB - 1)));
  assert.is(bad.status, 409);
  assert.is(((await bad.json()) as { error: { '.tag': string } }).error['.tag'], 'content_hash_mismatch');
  const ok = await append(0, first, contentHash(first));
  assert.is(ok.status, 200, await ok.clone().text());
  const last = await append(8 * MiB, data.subarray(8 * MiB), contentHash(data.subarray(8 * MiB)), true);
  assert.is(last.status, 200, await last.clone().text());
  const fin = await t.call('files/upload_session/finish', acc.accessToken, { arg: { cursor: { session_id: id, offset: data.length }, commit: { path: '/conc.bin' } }, body: '', headers: { 'Content-Type': 'application/octet-stream' } });
  assert.is(fin.status, 200, await fin.clone().text());
  assert.is(((await fin.json()) as { content_hash: string }).content_hash, contentHash(data));
  assert.ok((await download('/conc.bin'))!.equals(data));
});

test.run();
