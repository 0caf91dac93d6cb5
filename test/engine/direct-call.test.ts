// DirectCall (src/transfer/direct-call.ts): against the real local box over HTTP, a body read in
// place lands whole in the sink's memory, a sink that pauses after every piece still gets the whole
// body in order, a non-2xx answer is classified and never reaches the sink, a sink that refuses the
// headers stops the call with its own failure, a reset mid-body ends the call with a retry. Against
// a scripted HTTP server on a real socket (what the box does not send): a chunked body with
// extensions and trailers, keep-alive reuse, a kept connection the server closed while it idled
// (sent again on a new one), a body cut short, a malformed status line, bytes past the body (the
// connection is not reused), a server that never answers (headers timeout), an abort mid-body.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import type { Failure } from '../../src/transfer/dropbox-http.ts';
import { DirectCall, DirectPool } from '../../src/transfer/direct-call.ts';
import type { DirectPoolOptions, DirectSink, SinkAnswer } from '../../src/transfer/direct-call.ts';
import { createTokenCell, writeToken } from '../../src/transfer/token-cell.ts';
import type { AccountWire } from '../../src/transfer/task-wire.ts';
import { KiB, MiB, contentOf, makePool, seed, sha256, startFixture } from './helpers.ts';
import type { Fixture } from './helpers.ts';

let fx: Fixture;
let account: AccountWire;
const direct = new DirectPool(null);
const pool = makePool(4 * MiB, 3);

test.before(async () => {
  fx = await startFixture({ workers: 1 });
  const tokenCell = createTokenCell();
  writeToken(tokenCell, fx.account.accessToken);
  account = { slot: 0, name: 'alice', apiUrl: fx.box.url, contentUrl: fx.box.url, tokenCell };
});
test.after(async () => {
  direct.destroy();
  await fx.stop();
});

/** A sink that hashes the pieces it gets (none in place) and pauses the socket after each for `pauseMs`. */
function pausingSink(pauseMs: number, refuse: Failure | null = null) {
  const hash = createHash('sha256');
  const state = { bytes: 0, pieces: 0, started: 0, call: null as DirectCall | null, sha: () => hash.digest('hex') };
  const sink: DirectSink = {
    start() {
      state.started++;
      return refuse;
    },
    space: () => null,
    placed: () => ({ kind: 'fatal', code: 'DROPFTP_ERR_INTERNAL', reason: 'no space was given' }),
    data(chunk: Buffer): SinkAnswer {
      hash.update(chunk);
      state.bytes += chunk.length;
      state.pieces++;
      if (pauseMs < 0) return true;
      setTimeout(() => state.call?.resume(), pauseMs);
      return false;
    },
  };
  return { sink, state };
}

/** A sink that offers `target` (shared memory, as a ring is) for in-place reads, in regions of at most `regionBytes`. */
function placingSink(target: Uint8Array, regionBytes: number) {
  const state = { at: 0, placedBytes: 0, pieceBytes: 0, regionAt: 0 };
  const sink: DirectSink = {
    start: () => null,
    space(most) {
      const n = Math.min(most, regionBytes, target.length - state.at);
      if (n <= 0) return null;
      state.regionAt = state.at;
      return target.subarray(state.at, state.at + n);
    },
    placed(n) {
      assert.is(state.regionAt, state.at, 'placed() follows the space() it filled');
      state.at += n;
      state.placedBytes += n;
      return true;
    },
    data(chunk) {
      target.set(chunk, state.at);
      state.at += chunk.length;
      state.pieceBytes += chunk.length;
      return true;
    },
  };
  return { sink, state };
}

const call = (sink: DirectSink, path: string, pool2: DirectPool = direct, acc: AccountWire = account): DirectCall =>
  new DirectCall({ pool: pool2, account: acc, route: 'files/download', arg: { path } }, sink);

test('a body read in place lands whole in the sink’s memory', async () => {
  const data = contentOf(pool, 4, 3 * MiB + 5);
  await seed(fx.box, fx.account.accessToken, '/s/p.bin', data);
  const target = new Uint8Array(new SharedArrayBuffer(data.length));
  const { sink, state } = placingSink(target, 200 * KiB + 3);
  const outcome = await call(sink, '/s/p.bin').done;
  assert.equal(outcome, { statusCode: 200, failure: null });
  assert.is(state.at, data.length);
  assert.ok(Buffer.from(target).equals(data), 'bytes differ');
  // The head's read carries the body's first bytes (a piece); the rest is read in place.
  assert.ok(state.placedBytes > data.length - 128 * KiB, `placed ${state.placedBytes} of ${data.length} B`);
});

test('a sink that pauses after every piece gets the whole body, in order', async () => {
  const data = contentOf(pool, 1, 3 * MiB + 17);
  await seed(fx.box, fx.account.accessToken, '/s/a.bin', data);
  const { sink, state } = pausingSink(1);
  const c = call(sink, '/s/a.bin');
  state.call = c;
  const outcome = await c.done;
  assert.is(outcome.statusCode, 200);
  assert.is(outcome.failure, null);
  assert.is(state.bytes, data.length);
  assert.ok(state.pieces > 1, `pieces: ${state.pieces}`);
  assert.is(state.sha(), sha256(data));
});

test('a non-2xx answer is classified and never reaches the sink', async () => {
  const { sink, state } = pausingSink(0);
  const outcome = await call(sink, '/s/missing.bin').done;
  assert.is(outcome.statusCode, 409);
  assert.is(outcome.failure?.kind, 'fatal');
  assert.is(outcome.failure?.kind === 'fatal' && outcome.failure.code, 'DROPFTP_ERR_NOT_FOUND');
  assert.is(state.started, 0);
  assert.is(state.bytes, 0);
});

test('a sink that refuses the headers stops the call with its own failure', async () => {
  const data = contentOf(pool, 2, MiB);
  await seed(fx.box, fx.account.accessToken, '/s/b.bin', data);
  const refuse: Failure = { kind: 'fatal', code: 'DROPFTP_ERR_UPSTREAM', reason: 'refused by the test' };
  const { sink, state } = pausingSink(0, refuse);
  const outcome = await call(sink, '/s/b.bin').done;
  assert.is(outcome.failure, refuse);
  assert.is(state.started, 1);
  assert.is(state.bytes, 0);
});

test('a reset mid-body ends the call with a retry after the bytes already taken', async () => {
  const data = contentOf(pool, 3, 2 * MiB);
  await seed(fx.box, fx.account.accessToken, '/s/c.bin', data);
  await fx.box.setFaults({ rules: [{ kind: 'reset', routes: ['files/download'], afterBytes: 256 * KiB, count: 1 }] });
  const target = new Uint8Array(new SharedArrayBuffer(data.length));
  const { sink, state } = placingSink(target, 64 * KiB);
  const outcome = await call(sink, '/s/c.bin').done;
  await fx.box.setFaults({ rules: [] });
  assert.is(outcome.failure?.kind, 'retry');
  assert.ok(state.at < data.length, `took ${state.at} B`);
  assert.ok(Buffer.from(target.subarray(0, state.at)).equals(data.subarray(0, state.at)), 'the bytes taken are the file’s');
});

// ---- a scripted server: each request is answered by `answer(socket, index)` (index over the server's life)

interface Scripted {
  url: string;
  connections: number;
  closed: number;
  close(): Promise<void>;
}

async function scripted(answer: (socket: net.Socket, index: number) => void, tlsCert?: { key: string; cert: string }): Promise<Scripted> {
  let index = 0;
  const state = { connections: 0, closed: 0 };
  const sockets = new Set<net.Socket>();
  const onSocket = (socket: net.Socket): void => {
    state.connections++;
    sockets.add(socket);
    socket.on('close', () => (state.closed++, sockets.delete(socket)));
    socket.on('error', () => {});
    let seen = '';
    socket.on('data', (d) => {
      seen += d.toString('latin1');
      while (seen.includes('\r\n\r\n')) {
        const end = seen.indexOf('\r\n\r\n');
        const head = seen.slice(0, end);
        seen = seen.slice(end + 4);
        assert.match(head, /^POST \/2\/files\/download HTTP\/1\.1\r\n/);
        assert.match(head, /\r\ndropbox-api-arg: \{"path":/);
        answer(socket, index++);
      }
    });
  };
  const server = tlsCert ? tls.createServer(tlsCert, onSocket) : net.createServer(onSocket);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `${tlsCert ? 'https' : 'http'}://${tlsCert ? 'localhost' : '127.0.0.1'}:${port}`,
    get connections() {
      return state.connections;
    },
    get closed() {
      return state.closed;
    },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

const accountAt = (url: string): AccountWire => ({ ...account, apiUrl: url, contentUrl: url });
const OK_HEAD = 'HTTP/1.1 200 OK\r\ndropbox-api-result: {"size":5,"rev":"1"}\r\n';

/** Runs `body` against a scripted server and a pool of its own; both are closed after it, whatever happens. */
async function withScripted(answer: (socket: net.Socket, index: number) => void, body: (srv: Scripted, p: DirectPool, acc: AccountWire) => Promise<void>, options: Partial<DirectPoolOptions> = {}): Promise<void> {
  const srv = await scripted(answer);
  const p = new DirectPool(null, options);
  try {
    await body(srv, p, accountAt(srv.url));
  } finally {
    p.destroy();
    await srv.close();
  }
}

test('a chunked body with extensions and trailers; the connection is kept for the next call', async () => {
  await withScripted((s) => s.write(`${OK_HEAD}transfer-encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nx-trailer: 1\r\n\r\n`), async (srv, p, acc) => {
    for (let i = 0; i < 2; i++) {
      const target = new Uint8Array(16);
      const { sink, state } = placingSink(target, 16);
      const outcome = await call(sink, '/x', p, acc).done;
      assert.equal(outcome, { statusCode: 200, failure: null });
      assert.is(Buffer.from(target.subarray(0, state.at)).toString(), 'abcde');
      assert.is(state.placedBytes, 0, 'a chunked body is never read in place');
    }
    assert.is(srv.connections, 1);
  });
});

test('a kept connection the server closed while it idled: the call goes again on a new one', async () => {
  await withScripted((s) => {
    s.write(`${OK_HEAD}content-length: 5\r\n\r\nhello`);
    setTimeout(() => s.end(), 20);
  }, async (srv, p, acc) => {
    for (let i = 0; i < 2; i++) {
      const { sink, state } = pausingSink(-1);
      const outcome = await call(sink, '/x', p, acc).done;
      assert.equal(outcome, { statusCode: 200, failure: null });
      assert.is(state.bytes, 5);
      await new Promise((r) => setTimeout(r, 60));
    }
    assert.is(srv.connections, 2);
  });
});

test('a body cut short ends the call with a retry, and the connection is not kept', async () => {
  await withScripted((s) => s.end(`${OK_HEAD}content-length: 10\r\n\r\nhello`), async (srv, p, acc) => {
    const { sink, state } = pausingSink(-1);
    const outcome = await call(sink, '/x', p, acc).done;
    assert.is(outcome.statusCode, 200);
    assert.is(outcome.failure?.kind, 'retry');
    assert.is(state.bytes, 5);
  });
});

test('a malformed status line is a retry, the sink never started', async () => {
  await withScripted((s) => s.write('HTTP/1.1 2OO OK\r\ncontent-length: 0\r\n\r\n'), async (srv, p, acc) => {
    const { sink, state } = pausingSink(-1);
    const outcome = await call(sink, '/x', p, acc).done;
    assert.is(outcome.statusCode, 0);
    assert.is(outcome.failure?.kind, 'retry');
    assert.match(outcome.failure?.kind === 'retry' ? outcome.failure.reason : '', /malformed status line/);
    assert.is(state.started, 0);
  });
});

test('bytes past the body: the answer is taken, the connection is not reused', async () => {
  await withScripted((s) => s.write(`${OK_HEAD}content-length: 5\r\n\r\nhelloEXTRA`), async (srv, p, acc) => {
    for (let i = 0; i < 2; i++) {
      const { sink, state } = pausingSink(-1);
      const outcome = await call(sink, '/x', p, acc).done;
      assert.equal(outcome, { statusCode: 200, failure: null });
      assert.is(state.bytes, 5);
    }
    assert.is(srv.connections, 2);
  });
});

test('a server that never answers: a headers timeout, then a retry', async () => {
  const options: Partial<DirectPoolOptions> = { headersTimeoutMs: 150 };
  await withScripted(() => {}, async (srv, p, acc) => {
    const { sink } = pausingSink(-1);
    const started = Date.now();
    const outcome = await call(sink, '/x', p, acc).done;
    assert.is(outcome.failure?.kind, 'retry');
    assert.match(outcome.failure?.kind === 'retry' ? outcome.failure.reason : '', /headers timeout/);
    assert.ok(Date.now() - started < 5000);
    await new Promise((r) => setTimeout(r, 50));
    assert.is(srv.closed, 1, 'the socket was closed');
  }, options);
});

test('an abort mid-body settles with its failure and closes the socket', async () => {
  await withScripted((s) => s.write(`${OK_HEAD}content-length: 1000000\r\n\r\n${'x'.repeat(1000)}`), async (srv, p, acc) => {
    const stop: Failure = { kind: 'closed', reason: 'stopped by the test' };
    let c: DirectCall | null = null;
    const sink: DirectSink = {
      start: () => null,
      space: () => null,
      placed: () => true,
      data: () => {
        setTimeout(() => c?.abort(stop), 5);
        return true;
      },
    };
    c = call(sink, '/x', p, acc);
    const outcome = await c.done;
    assert.is(outcome.failure, stop);
    await new Promise((r) => setTimeout(r, 50));
    assert.is(srv.closed, 1);
  });
});

test('over TLS: a length-framed body read in place, a chunked one from scratch, one connection', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dropftp-direct-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost', '-days', '1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  const cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
  const key = readFileSync(join(dir, 'key.pem'), 'utf8');
  rmSync(dir, { recursive: true, force: true });
  const body = contentOf(pool, 5, 300 * KiB + 7);
  const srv = await scripted((s, i) => {
    if (i === 0) {
      s.write(`${OK_HEAD}content-length: ${body.length}\r\n\r\n`);
      s.write(body);
    } else s.write(`${OK_HEAD}transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`);
  }, { key, cert });
  const p = new DirectPool(null, { ca: cert });
  const untrusted = new DirectPool(null);
  try {
    const target = new Uint8Array(new SharedArrayBuffer(body.length));
    const placing = placingSink(target, 64 * KiB);
    const first = await call(placing.sink, '/x', p, accountAt(srv.url)).done;
    assert.equal(first, { statusCode: 200, failure: null });
    assert.ok(Buffer.from(target).equals(body), 'bytes differ');
    assert.ok(placing.state.placedBytes > 0, 'TLS reads land in place too');
    const { sink, state } = pausingSink(-1);
    const second = await call(sink, '/x', p, accountAt(srv.url)).done;
    assert.equal(second, { statusCode: 200, failure: null });
    assert.is(state.bytes, 5);
    assert.is(srv.connections, 1);
    // Without the certificate trusted: no answer, a retry (the download loop bounds those).
    const refused = await call(pausingSink(-1).sink, '/x', untrusted, accountAt(srv.url)).done;
    assert.is(refused.statusCode, 0);
    assert.is(refused.failure?.kind, 'retry');
  } finally {
    p.destroy();
    untrusted.destroy();
    await srv.close();
  }
});

test.run();
