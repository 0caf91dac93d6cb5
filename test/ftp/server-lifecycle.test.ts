// FtpServer's lifecycle vocabulary (as undici): destroy(err) is abortive — a running upload is
// aborted and commits nothing, every session is cut at once; close() is graceful — no new
// connection, an idle session gets 421 now, a running upload finishes (226, committed) and only
// then does its session get 421. Real FTP against the whole service on the local box.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from 'node:net';
import { FtpServer } from '../../src/ftp/server.ts';
import { buildCommandTable } from '../../src/ftp/commands/index.ts';
import { startStack, type Stack } from './helpers/stack.ts';
import { RawFtp, openData, until } from './helpers/raw-client.ts';
import { pattern, sha256 } from '../reliability/helpers.ts';
import { download } from './helpers/data-connection.ts';

let stack: Stack;

test.before(async () => {
  stack = await startStack();
});
test.after(async () => {
  await stack?.stop();
});

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect({ port, host: '127.0.0.1' });
    probe.once('connect', () => (probe.destroy(), resolve(false)));
    probe.once('error', () => resolve(true));
  });
}

/** Logs in on `port`, starts STOR `path` and sends the first half of `bytes`; the data socket stays open. */
async function halfUpload(port: number, path: string, bytes: Buffer): Promise<{ c: RawFtp; data: import('node:net').Socket }> {
  const c = await RawFtp.connect(port);
  await c.login(stack.user, stack.password);
  const { port: dataPort } = await c.pasv();
  const data = await openData(dataPort);
  data.on('error', () => {});
  c.send(`STOR ${path}`);
  assert.is((await c.read()).code, 150);
  data.write(bytes.subarray(0, bytes.length >> 1));
  return { c, data };
}

async function storedSha(path: string): Promise<string | null> {
  const c = await RawFtp.connect(stack.port);
  await c.login(stack.user, stack.password);
  const got = await download(c, `RETR ${path}`);
  c.close();
  return got.final.code === 226 ? sha256(got.data) : null;
}

test('destroy(err): the running upload is aborted, nothing is committed, every session is cut at once', async () => {
  const server = new FtpServer({ host: '127.0.0.1', port: 0, authenticate: stack.authenticate, commands: buildCommandTable() });
  const { port } = await server.listen();
  const bytes = pattern(512 * 1024, 5);
  const { c, data } = await halfUpload(port, '/destroyed.bin', bytes);
  const idle = await RawFtp.connect(port);
  const started = Date.now();
  await server.destroy();
  assert.ok(Date.now() - started < 2000, 'destroy does not wait for the transfer');
  await until(() => c.closed && idle.closed, 2000, 'sessions cut');
  assert.ok(await refused(port), 'no new connection');
  data.destroy();
  assert.is(await storedSha('/destroyed.bin'), null, 'nothing of the aborted upload was committed');
});

test('close(): no new connection, an idle session gets 421 now, the running upload finishes (226) before its 421', async () => {
  const bytes = pattern(512 * 1024, 6);
  const { c, data } = await halfUpload(stack.port, '/graceful.bin', bytes);
  const idle = await RawFtp.connect(stack.port);
  await idle.login(stack.user, stack.password);
  let closed = false;
  const closing = stack.ftp.close().then(() => (closed = true));
  const idleReply = await idle.read();
  assert.is(idleReply.code, 421, idleReply.text);
  await until(() => idle.closed, 2000, 'the idle session closed');
  assert.ok(await refused(stack.port), 'no new connection while closing');
  assert.not.ok(closed, 'close() waits for the running upload');
  data.end(bytes.subarray(bytes.length >> 1));
  const final = await c.read(15_000);
  assert.is(final.code, 226, final.text);
  const last = await c.read();
  assert.is(last.code, 421, last.text);
  await until(() => c.closed, 2000, 'the busy session closed after its transfer');
  await closing;
  assert.ok(closed);
  // The upload was committed whole: read it back through a server of its own on the same service.
  const reader = new FtpServer({ host: '127.0.0.1', port: 0, authenticate: stack.authenticate, commands: buildCommandTable() });
  const { port } = await reader.listen();
  const r = await RawFtp.connect(port);
  await r.login(stack.user, stack.password);
  const got = await download(r, 'RETR /graceful.bin');
  assert.is(got.final.code, 226, got.final.text);
  assert.is(sha256(got.data), sha256(bytes));
  r.close();
  await reader.close();
});

test.run();
