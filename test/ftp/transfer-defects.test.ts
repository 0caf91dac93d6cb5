// Regression tests for ftp-srv 4.6.3 transfer defects (shared/reference/ftp-srv.md A.4, A.7, A.8),
// each named after its defect, through real sockets, the real engine and the real local box.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { Socket } from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import { FtpServer, type FtpServerOptions } from '../../src/ftp/server.ts';
import { RawFtp, download, openData, readAll, sleep, upload } from './helpers/raw-client.ts';
import { startStack, type Stack } from './helpers/stack.ts';

let stack: Stack;
let c: RawFtp;
const big = randomBytes(24 * 1024 * 1024);
const v1 = Buffer.from('version one');
const extra: FtpServer[] = [];

let unhandled: unknown[] = [];
process.on('unhandledRejection', (err) => unhandled.push(err));

test.before(async () => {
  stack = await startStack({ limits: { dataConnectTimeoutMs: 3000 } });
  c = await RawFtp.connect(stack.port);
  await c.login(stack.user, stack.password);
  assert.is((await upload(c, 'STOR /big.bin', big)).final.code, 226);
  assert.is((await upload(c, 'STOR /keep.bin', v1)).final.code, 226);
});

test.after.each(() => {
  assert.equal(unhandled, []);
});

test.after(async () => {
  c.close();
  for (const s of extra) await s.close();
  await stack.stop();
});

async function server(options: FtpServerOptions): Promise<number> {
  const s = new FtpServer({ host: '127.0.0.1', port: 0, authenticate: stack.authenticate, ...options });
  extra.push(s);
  return (await s.listen()).port;
}

/** A STOR of `path` under way: its 150 read, `bytes` random bytes sent and given 300 ms to arrive; the data socket. */
async function storMidway(path: string, bytes: number): Promise<Socket> {
  const { port } = await c.pasv();
  const data = await openData(port);
  c.send(`STOR ${path}`);
  assert.is((await c.read()).code, 150);
  data.write(randomBytes(bytes));
  await sleep(300);
  return data;
}

async function keepIsV1(): Promise<void> {
  const got = await download(c, 'RETR /keep.bin');
  assert.is(got.final.code, 226);
  assert.ok(got.data.equals(v1), 'the previous version is untouched');
}

test('defect: ABOR not read during a transfer (control socket paused)', async () => {
  const { port } = await c.pasv();
  const data = await openData(port);
  data.pause(); // a slow client: the transfer cannot finish on its own
  c.send('RETR /big.bin');
  assert.is((await c.read()).code, 150);
  await sleep(200);
  const started = Date.now();
  c.send('ABOR');
  assert.is((await c.read(3000)).code, 426);
  assert.is((await c.read(3000)).code, 226);
  assert.ok(Date.now() - started < 3000);
  data.destroy();
  assert.is((await c.cmd('NOOP')).code, 200);
});

test('defect: aborted uploads run the commit (ABOR mid-STOR)', async () => {
  const data = await storMidway('/keep.bin', 1 << 20);
  c.send('ABOR');
  assert.is((await c.read(5000)).code, 426);
  assert.is((await c.read(5000)).code, 226);
  data.destroy();
  await keepIsV1();
});

test('BSD ftp\'s abort (IAC IP IAC urgent, then DM ABOR, then the data connection ended cleanly) aborts the STOR', async () => {
  // netkit/BSD ftp sends "IAC IP IAC" with MSG_OOB: the kernel takes the last IAC out of band, so the
  // server reads IAC IP, then a bare DM (0xF2) before "ABOR". That line was refused (502), and the
  // clean end of the data connection behind it committed the bytes sent so far over the old file.
  const data = await storMidway('/keep.bin', 3 << 20);
  c.sendRaw(Buffer.from([0xff, 0xf4]));
  c.sendRaw(Buffer.concat([Buffer.from([0xf2]), Buffer.from('ABOR\r\n')]));
  await sleep(100);
  data.end();
  assert.is((await c.read(5000)).code, 426);
  assert.is((await c.read(5000)).code, 226);
  await keepIsV1();
});

test('defect: aborted uploads run the commit (client resets the data connection)', async () => {
  for (const path of ['/keep.bin', '/never.bin']) {
    const data = await storMidway(path, 3 << 20);
    data.resetAndDestroy();
    assert.is((await c.read(5000)).code, 426);
  }
  await keepIsV1();
  assert.is((await c.cmd('MLST /never.bin')).code, 550, 'nothing committed for a new path');
});

test('defect: connector.socket null crash (#270): data connection gone before STOR', async () => {
  const { port } = await c.pasv();
  const data = await openData(port);
  await sleep(50);
  data.resetAndDestroy();
  await sleep(100);
  const reply = await c.cmd('STOR /keep.bin', 5000);
  assert.ok([425, 426].includes(reply.code) || (reply.code === 150 && [425, 426].includes((await c.read(5000)).code)), reply.text);
  assert.is((await c.cmd('NOOP')).code, 200);
  await keepIsV1();
});

test('defect: idle timeout kills a running transfer', async () => {
  const port = await server({ idleTimeoutMs: 300 });
  const d = await RawFtp.connect(port);
  await d.login(stack.user, stack.password);
  const { port: dataPort } = await d.pasv();
  const data = await openData(dataPort);
  d.send('RETR /big.bin');
  assert.is((await d.read()).code, 150);
  // Read slowly: the transfer lasts well beyond the idle timeout.
  const chunks: Buffer[] = [];
  data.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    data.pause();
    setTimeout(() => data.resume(), 2);
  });
  const started = Date.now();
  await new Promise((resolve) => data.once('end', resolve));
  assert.ok(Date.now() - started > 600, `transfer lasted ${Date.now() - started} ms`);
  assert.is((await d.read()).code, 226);
  assert.ok(Buffer.concat(chunks).equals(big));
  // Idle again: now the timeout applies.
  assert.is((await d.read(3000)).code, 421);
});

test('per-transfer stall timeout: a client that stops reading gets 426', async () => {
  const port = await server({ stallTimeoutMs: 500 });
  const d = await RawFtp.connect(port);
  await d.login(stack.user, stack.password);
  const { port: dataPort } = await d.pasv();
  const data = await openData(dataPort);
  data.pause();
  d.send('RETR /big.bin');
  assert.is((await d.read()).code, 150);
  const reply = await d.read(10_000);
  assert.is(reply.code, 426);
  assert.is(reply.text, '426 Transfer stalled; aborted');
  data.destroy();
  d.close();
});

test('defect: RETR/STOR hang when the stream closes without end/finish/error', async () => {
  const port = await server({
    authenticate: async (login) => {
      const result = await stack.authenticate(login);
      const fs = result.fs;
      const openRead = fs.openRead.bind(fs);
      fs.openRead = async (path, options) => {
        const source = await openRead(path, options);
        const cut = new PassThrough();
        source.once('data', (chunk: Buffer) => {
          cut.write(chunk);
          source.destroy();
          setTimeout(() => cut.destroy(), 20); // closes with neither 'end' nor 'error'
        });
        return cut;
      };
      const openWrite = fs.openWrite.bind(fs);
      fs.openWrite = async (path, options) => {
        const sink = await openWrite(path, options);
        sink.on('error', () => {});
        let writes = 0;
        const broken = new Writable({
          write(chunk, _encoding, callback) {
            if (++writes === 2) {
              sink.abort('test');
              broken.destroy(); // closes with neither 'finish' nor 'error'
              return;
            }
            sink.write(chunk, callback);
          },
        });
        return Object.assign(broken, { abort: (reason?: string) => sink.abort(reason) });
      };
      return result;
    },
  });
  const d = await RawFtp.connect(port);
  await d.login(stack.user, stack.password);
  const got = await download(d, 'RETR /big.bin');
  assert.is(got.final.code, 451, got.final.text);
  const { port: dataPort } = await d.pasv();
  const data = await openData(dataPort);
  d.send('STOR /keep.bin');
  assert.is((await d.read()).code, 150);
  data.write(randomBytes(1 << 20));
  assert.is((await d.read(5000)).code, 451);
  data.destroy();
  assert.is((await d.cmd('NOOP')).code, 200);
  d.close();
  await keepIsV1();
});

test('defect: LIST written one awaited write per entry', async () => {
  const lines = Array.from({ length: 300 }, (_, i) => `MKD /many/d${i}`);
  await c.cmd('MKD /many');
  c.sendRaw(lines.join('\r\n') + '\r\n');
  for (let i = 0; i < 300; i++) assert.is((await c.read()).code, 257);
  const { port } = await c.pasv();
  const data = await openData(port);
  const received = readAll(data);
  const localPort = data.localPort;
  let writes = 0;
  const original = Socket.prototype.write;
  Socket.prototype.write = function (this: Socket, ...args: Parameters<Socket['write']>) {
    if (this.remotePort === localPort) writes++;
    return original.apply(this, args);
  } as Socket['write'];
  try {
    c.send('LIST /many');
    assert.is((await c.read()).code, 150);
    const text = (await received).toString();
    assert.is((await c.read()).code, 226);
    assert.is(text.split('\r\n').filter(Boolean).length, 300);
  } finally {
    Socket.prototype.write = original;
  }
  assert.ok(writes <= 2, `${writes} writes for 300 entries`);
});

test.run();
