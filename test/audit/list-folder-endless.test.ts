// Audit regression: DropboxRpc.listFolder (and the directory cache's feed) followed has_more for ever. A server that kept answering
// has_more with the cursor it was given (or an endless chain of pages) held the caller, and the
// entries it had gathered, for ever. The fault is on the wire: a tiny real HTTP server here speaks
// list_folder and list_folder/continue (the local box has no fault that rewrites cursors).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Agent } from 'undici';
import { DropftpError } from '../../src/errors.ts';
import { DropboxRpc } from '../../src/dropbox/rpc.ts';
import { DirectoryCache } from '../../src/sync/index.ts';
import { DropboxFs } from '../../src/ftp/fs/dropbox-fs.ts';
import { FtpServer } from '../../src/ftp/server.ts';
import { RawFtp, download } from '../ftp/helpers/raw-client.ts';

type Page = { entries: unknown[]; cursor: string; has_more: boolean };

let server: Server;
let agent: Agent;
let url = '';
let requests = 0;
/** Answers the n-th request (1-based) of the current case. */
let answer: (n: number, body: { cursor?: string }) => Page = () => ({ entries: [], cursor: 'c', has_more: false });

const file = (name: string) => ({ '.tag': 'file', name, path_lower: `/d/${name}`, path_display: `/d/${name}`, id: `id:${name}`, size: 1, rev: '0123456789', client_modified: '2026-01-01T00:00:00Z' });

test.before(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests++;
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { cursor?: string };
      const page = answer(requests, body);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(page));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  agent = new Agent({ connections: 2 });
});

test.after(async () => {
  await agent.close();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** listFolder's outcome, or 'hung' when it neither resolves nor rejects within limitMs. */
async function listWithin(limitMs: number): Promise<{ entries?: number; error?: unknown; hung?: true }> {
  const rpc = new DropboxRpc({ name: 'a', apiUrl: url, accessToken: 't' }, agent);
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<{ hung: true }>((resolve) => (timer = setTimeout(() => resolve({ hung: true }), limitMs)));
  const run = rpc.listFolder('/d').then(
    (entries) => ({ entries: entries.length }),
    (error: unknown) => ({ error }),
  );
  try {
    return await Promise.race([run, hung]);
  } finally {
    clearTimeout(timer);
  }
}

test('has_more with an unchanged cursor is an upstream error, not an endless loop', async () => {
  requests = 0;
  answer = (n) => ({ entries: [file(`f${n}`)], cursor: 'same-cursor', has_more: true });
  const result = await listWithin(3000);
  assert.not.ok(result.hung, `still listing after 3 s (${requests} requests)`);
  assert.instance(result.error, DropftpError);
  assert.is((result.error as DropftpError).code, 'DROPFTP_ERR_UPSTREAM');
  assert.is((result.error as DropftpError).ftpCode, 451);
  assert.is(requests, 2, 'list_folder, one continue, then stop');
  answer = () => ({ entries: [], cursor: 'c', has_more: false });
  await new Promise((r) => setTimeout(r, 200));
  assert.is(requests, 2, 'no request after the error');
});

test('an endless chain of fresh cursors stops at maxListPages', async () => {
  const saved = DropboxRpc.maxListPages;
  DropboxRpc.maxListPages = 40;
  try {
    requests = 0;
    answer = (n) => ({ entries: [file(`f${n}`)], cursor: `cursor-${n}`, has_more: true });
    const result = await listWithin(5000);
    assert.not.ok(result.hung, `still listing after 5 s (${requests} requests)`);
    assert.is((result.error as DropftpError).code, 'DROPFTP_ERR_UPSTREAM');
    assert.is(requests, 40);
  } finally {
    DropboxRpc.maxListPages = saved;
  }
});

test('a real multi-page listing (cursor moves, has_more ends) still returns every entry', async () => {
  requests = 0;
  const sent: (string | undefined)[] = [];
  answer = (n, body) => {
    sent.push(body.cursor);
    // Page 2 answers has_more with the cursor unchanged only at the very end (has_more false): allowed.
    if (n < 3) return { entries: [file(`a${n}`), file(`b${n}`)], cursor: `cursor-${n}`, has_more: true };
    return { entries: [file(`z${n}`)], cursor: `cursor-${n - 1}`, has_more: false };
  };
  const result = await listWithin(3000);
  assert.is(result.error, undefined);
  assert.is(result.entries, 5);
  assert.equal(sent, [undefined, 'cursor-1', 'cursor-2']);
});

test('an FTP LIST of such a folder ends with 451, no hang', async () => {
  requests = 0;
  answer = (n) => ({ entries: [file(`f${n}`)], cursor: 'same-cursor', has_more: true });
  const rpc = new DropboxRpc({ name: 'a', apiUrl: url, accessToken: 't' }, agent);
  const refuse = (): never => {
    throw new DropftpError('DROPFTP_ERR_UPSTREAM', 'no transfers in this test');
  };
  const noTransfers = { openDownload: refuse, openUpload: refuse };
  const ftp = new FtpServer({
    host: '127.0.0.1',
    port: 0,
    authenticate: async () => ({ fs: new DropboxFs({ rpc, transfers: noTransfers, account: 'a', user: 'alice' }) }),
  });
  const { port } = await ftp.listen();
  const c = await RawFtp.connect(port);
  try {
    await c.login('alice', 'secret');
    const r = await download(c, 'LIST /');
    assert.is(r.final.code, 451, r.final.text);
    assert.ok(requests <= 2, `${requests} requests`);
  } finally {
    c.close();
    await ftp.close();
  }
});

test('the directory cache feed backs off on has_more with an unchanged cursor (no request loop)', async () => {
  requests = 0;
  answer = (n) => ({ entries: [file(`f${n}`)], cursor: 'same-cursor', has_more: true });
  const cache = new DirectoryCache({ apiUrl: url, accessToken: 't', name: 'audit', minBackoffMs: 200, maxBackoffMs: 2000 }).start();
  try {
    await new Promise((r) => setTimeout(r, 1200));
    // 200, 400, 800 ms backoffs (±20%): about 4 continues after the first page; a loop makes thousands.
    assert.ok(requests >= 2 && requests <= 8, `${requests} requests in 1.2 s`);
    assert.not.ok(cache.isReady);
    assert.match(cache.stats().lastError ?? '', /unchanged cursor/);
  } finally {
    await cache.close();
  }
});

test.run();
