// files/download over raw HTTP and the SDK: Range (206 + Content-Range), 416, ETag / If-None-Match
// (304), GET with the `arg` URL parameter, Dropbox-API-Result ASCII-escaped, and non-ASCII names in
// raw UTF-8 and escaped Dropbox-API-Arg headers; chunked upload bodies; keep-alive reuse.
import { request as httpRequest } from 'node:http';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { LocalBoxAccount } from '../../src/localbox/index.ts';
import { bytes, makeBox, type TestBox } from './helpers.ts';

let t: TestBox;
let acc: LocalBoxAccount;
const data = bytes(5 * 1024 * 1024 + 77, 3);
const NAME = '/Ünïcødé 文件 😀.bin';

test.before(async () => {
  t = await makeBox();
  acc = await t.box.createAccount('alice');
  await t.sdk(acc).filesUpload({ path: NAME, contents: data });
});
test.after(async () => {
  await t.cleanup();
});

/** A raw request whose Dropbox-API-Arg carries raw UTF-8 bytes (as the Go SDK sends). */
function rawUtf8(route: string, argJson: string, body: Buffer | null, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  const url = new URL(`${t.box.url}/2/${route}`);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: {
          Authorization: `Bearer ${acc.accessToken}`,
          'Dropbox-API-Arg': Buffer.from(argJson, 'utf8').toString('latin1'),
          ...(body ? { 'Content-Type': 'application/octet-stream' } : {}),
          ...headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    if (body) {
      // chunked transfer encoding: no Content-Length, two writes
      req.write(body.subarray(0, body.length >> 1));
      req.end(body.subarray(body.length >> 1));
    } else req.end();
  });
}

test('Range reads: 206 with Content-Range, suffix and open ranges, 416', async () => {
  const dl = (range: string) => t.call('files/download', acc.accessToken, { arg: { path: NAME }, headers: { Range: range } });
  let r = await dl('bytes=100-4194403');
  assert.is(r.status, 206);
  assert.is(r.headers.get('content-range'), `bytes 100-4194403/${data.length}`);
  assert.ok(Buffer.from(await r.arrayBuffer()).equals(data.subarray(100, 4194404)));
  r = await dl(`bytes=${data.length - 10}-`);
  assert.is(r.status, 206);
  assert.ok(Buffer.from(await r.arrayBuffer()).equals(data.subarray(data.length - 10)));
  r = await dl('bytes=-5');
  assert.ok(Buffer.from(await r.arrayBuffer()).equals(data.subarray(data.length - 5)));
  assert.ok(r.headers.get('dropbox-api-result'));
  r = await dl(`bytes=${data.length}-`);
  assert.is(r.status, 416);
  assert.is(r.headers.get('content-range'), `bytes */${data.length}`);
  await r.arrayBuffer();
});

test('ETag W/"rev", If-None-Match → 304; GET with arg and authorization URL parameters', async () => {
  const r = await t.call('files/download', acc.accessToken, { arg: { path: NAME } });
  assert.is(r.status, 200);
  const meta = JSON.parse(r.headers.get('dropbox-api-result')!);
  assert.is(r.headers.get('etag'), `W/"${meta.rev}"`);
  assert.ok(Buffer.from(await r.arrayBuffer()).equals(data));
  const r304 = await t.call('files/download', acc.accessToken, { arg: { path: NAME }, headers: { 'If-None-Match': `W/"${meta.rev}"` } });
  assert.is(r304.status, 304);
  const q = new URLSearchParams({ arg: JSON.stringify({ path: meta.id }), authorization: `Bearer ${acc.accessToken}` });
  const g = await fetch(`${t.box.url}/2/files/download?${q}`);
  assert.is(g.status, 200);
  assert.ok(Buffer.from(await g.arrayBuffer()).equals(data));
});

test('Dropbox-API-Result is ASCII-escaped and parses to the real name', async () => {
  const r = await rawUtf8('files/download', JSON.stringify({ path: NAME }), null);
  assert.is(r.status, 200);
  const header = r.headers['dropbox-api-result'] as string;
  assert.ok(/^[\x20-\x7e]*$/.test(header), 'header must be pure ASCII');
  assert.is(JSON.parse(header).name, NAME.slice(1));
  assert.ok(r.body.equals(data));
});

test('raw UTF-8 and escaped Dropbox-API-Arg name the same file; chunked upload bodies', async () => {
  const body = Buffer.from('raw utf-8 upload');
  const up = await rawUtf8('files/upload', JSON.stringify({ path: '/raw/Ärger ✓.txt', mode: 'overwrite' }), body);
  assert.is(up.status, 200, up.body.toString());
  assert.is(JSON.parse(up.body.toString()).name, 'Ärger ✓.txt');
  const esc = await t.call('files/download', acc.accessToken, { arg: { path: '/raw/ärger ✓.TXT' } });
  assert.is(esc.status, 200);
  assert.is(Buffer.from(await esc.arrayBuffer()).toString(), 'raw utf-8 upload');
  const bad = await rawUtf8('files/download', '{"path": "/x', null);
  assert.is(bad.status, 400);
  assert.match(bad.body.toString(), /could not decode input as JSON/);
  const latin1 = await new Promise<number>((resolve) => {
    const url = new URL(`${t.box.url}/2/files/download`);
    httpRequest(
      { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { Authorization: `Bearer ${acc.accessToken}`, 'Dropbox-API-Arg': '{"path": "/\xe9"}' } },
      (res) => {
        res.resume();
        resolve(res.statusCode!);
      },
    ).end();
  });
  assert.is(latin1, 400);
});

test('a download that started keeps its bytes when the file is deleted and blocks are collected meanwhile', async () => {
  // Five blocks; the reader pauses in the first while the file is deleted and the box collects
  // unreferenced blocks (its timer does this every 10 minutes; admin/gc now). Before readers pinned
  // their blocks, the rest of the body was gone and the download ended short.
  const big = bytes(20 * 1024 * 1024 + 5, 11);
  const sdk = t.sdk(acc);
  await sdk.filesUpload({ path: '/doomed.bin', contents: big, mode: { '.tag': 'overwrite' } });
  const url = new URL(`${t.box.url}/2/files/download`);
  const got: Buffer[] = [];
  let paused!: () => void;
  const firstBytes = new Promise<void>((resolve) => (paused = resolve));
  let resumeIt!: () => void;
  const done = new Promise<{ status: number; complete: boolean }>((resolve, reject) => {
    const req = httpRequest(
      { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { Authorization: `Bearer ${acc.accessToken}`, 'Dropbox-API-Arg': JSON.stringify({ path: '/doomed.bin' }) } },
      (res) => {
        res.once('data', () => {
          res.pause();
          resumeIt = () => res.resume();
          paused();
        });
        res.on('data', (d: Buffer) => got.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, complete: res.complete }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
  await firstBytes;
  await sdk.filesDeleteV2({ path: '/doomed.bin' });
  await t.admin('POST', 'gc');
  resumeIt();
  const r = await done;
  assert.is(r.status, 200);
  assert.ok(r.complete, 'the body came to its end');
  assert.ok(Buffer.concat(got).equals(big), 'every byte of the file as it was');
  // Once the download is over, its blocks are garbage like any other.
  const after = await t.admin<{ deletedBlocks: number }>('POST', 'gc');
  assert.ok(after.deletedBlocks >= 5, `collected after the download (${after.deletedBlocks})`);
});

test('errors on download: folder → not_file, missing → not_found, bad path → 400', async () => {
  await t.sdk(acc).filesCreateFolderV2({ path: '/dir' });
  let r = await t.call('files/download', acc.accessToken, { arg: { path: '/dir' } });
  assert.is(r.status, 409);
  assert.equal(((await r.json()) as { error: unknown }).error, { '.tag': 'path', path: { '.tag': 'not_file' } });
  r = await t.call('files/download', acc.accessToken, { arg: { path: '/missing' } });
  assert.equal(((await r.json()) as { error: unknown }).error, { '.tag': 'path', path: { '.tag': 'not_found' } });
  r = await t.call('files/download', acc.accessToken, { arg: { path: 'relative' } });
  assert.is(r.status, 400);
  assert.is(r.headers.get('content-type'), 'text/plain; charset=utf-8');
  assert.ok(r.headers.get('x-dropbox-request-id'));
  await r.text();
});

test.run();
