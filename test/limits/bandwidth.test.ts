// Per-user bandwidth caps on real TCP streams: a 1 MiB/s cap makes a 3 MiB transfer take about
// 3 s; two transfers of one user share the cap fairly (one paced by throttle(), one by take());
// another user has its own cap; an aborted transfer stops consuming the bucket.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { BandwidthLimits } from '../../src/limits/index.ts';

const MiB = 1024 * 1024;
const CHUNK = 64 * 1024;

type Sender = (socket: Socket, byteLength: number) => Promise<void>;
const servers: Server[] = [];
let limits: BandwidthLimits;

test.before.each(() => {
  limits = new BandwidthLimits({ bandwidth: { downloadBytesPerSec: MiB }, userBandwidth: { bob: { downloadBytesPerSec: 2 * MiB } } });
});
test.after.each(async () => {
  limits.close();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

function* chunks(byteLength: number): Generator<Buffer> {
  for (let sent = 0; sent < byteLength; sent += CHUNK) yield Buffer.alloc(Math.min(CHUNK, byteLength - sent), 0x61);
}

/** Paces with the bucket as a Transform stream in the pipeline. */
const viaThrottle = (user: string): Sender => async (socket, byteLength) => {
  await pipeline(Readable.from(chunks(byteLength)), limits.bucket(user, 'download')!.throttle(), socket);
};

/** Paces with take() before each write (the other API, same bucket). */
const viaTake = (user: string): Sender => async (socket, byteLength) => {
  for (const chunk of chunks(byteLength)) {
    await limits.bucket(user, 'download')!.take(chunk.length);
    if (!socket.write(chunk)) await once(socket, 'drain');
  }
  socket.end();
};

/** A server that sends `byteLength` bytes to each client with the given sender. */
async function serveBytes(byteLength: number, sender: Sender): Promise<number> {
  const server = createServer((socket) => {
    socket.on('error', () => {});
    sender(socket, byteLength).catch(() => socket.destroy());
  }).listen(0, '127.0.0.1');
  servers.push(server);
  await once(server, 'listening');
  return (server.address() as { port: number }).port;
}

interface Received {
  byteLength: number;
  elapsedMs: number;
  progressAt(ms: number): number;
}

/** Downloads everything; records bytes over time. */
function download(port: number, onSocket?: (s: Socket) => void): Promise<Received> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const marks: [number, number][] = [];
    let byteLength = 0;
    const socket = connect(port, '127.0.0.1');
    onSocket?.(socket);
    socket.on('data', (d: Buffer) => {
      byteLength += d.length;
      marks.push([performance.now() - started, byteLength]);
    });
    socket.on('error', reject);
    socket.on('close', () =>
      resolve({
        byteLength,
        elapsedMs: performance.now() - started,
        progressAt: (ms) => marks.filter(([t]) => t <= ms).at(-1)?.[1] ?? 0,
      }),
    );
  });
}

test('a 1 MiB/s cap makes a 3 MiB transfer take about 3 s', async () => {
  const port = await serveBytes(3 * MiB, viaThrottle('alice'));
  const got = await download(port);
  assert.is(got.byteLength, 3 * MiB);
  // The bucket starts with a tenth of a second's burst, so ~2.9 s is the floor.
  assert.ok(got.elapsedMs > 2750 && got.elapsedMs < 3600, `took ${got.elapsedMs.toFixed(0)} ms`);
});

test("two transfers of one user share its cap evenly; another user's cap is its own", async () => {
  const portA = await serveBytes(1.5 * MiB, viaThrottle('alice'));
  const portB = await serveBytes(1.5 * MiB, viaTake('alice'));
  const portBob = await serveBytes(2 * MiB, viaThrottle('bob'));
  const [a, b, bob] = await Promise.all([download(portA), download(portB), download(portBob)]);
  assert.is(a.byteLength, 1.5 * MiB);
  assert.is(b.byteLength, 1.5 * MiB);
  for (const x of [a, b]) assert.ok(x.elapsedMs > 2750 && x.elapsedMs < 3700, `alice's transfer took ${x.elapsedMs.toFixed(0)} ms (3 MiB at 1 MiB/s in all)`);
  assert.ok(Math.abs(a.elapsedMs - b.elapsedMs) < 400, `fair finish: ${a.elapsedMs.toFixed(0)} vs ${b.elapsedMs.toFixed(0)} ms`);
  const [pa, pb] = [a.progressAt(1500), b.progressAt(1500)];
  assert.ok(Math.abs(pa - pb) < 0.25 * MiB, `fair progress at 1.5 s: ${pa} vs ${pb} bytes`);
  assert.ok(bob.elapsedMs > 850 && bob.elapsedMs < 1500, `bob: 2 MiB at 2 MiB/s took ${bob.elapsedMs.toFixed(0)} ms`);
});

test('an aborted transfer leaves the bucket: the survivor gets the whole cap', async () => {
  const portA = await serveBytes(8 * MiB, viaThrottle('alice'));
  const portB = await serveBytes(1.5 * MiB, viaThrottle('alice'));
  let victim: Socket | null = null;
  const a = download(portA, (s) => (victim = s));
  const started = performance.now();
  const b = download(portB);
  await new Promise((r) => setTimeout(r, 500)); // both share: ~0.25 MiB each so far
  victim!.destroy();
  await a;
  const got = await b;
  assert.is(got.byteLength, 1.5 * MiB);
  // ~0.5 s shared (≈0.25 MiB), then the remaining ≈1.25 MiB alone at 1 MiB/s: ≈1.75 s in all.
  const elapsedMs = performance.now() - started;
  assert.ok(elapsedMs > 1500 && elapsedMs < 2300, `survivor took ${elapsedMs.toFixed(0)} ms`);
  assert.is(limits.bucket('alice', 'download')!.waiting, 0);
});

test('uncapped users and directions get no bucket; take() honours an abort signal', async () => {
  assert.is(limits.bucket('alice', 'upload'), null);
  const bucket = limits.bucket('alice', 'download')!;
  await bucket.take(bucket.burstBytes); // empty it
  const abort = new AbortController();
  const pending = bucket.take(MiB, abort.signal);
  setTimeout(() => abort.abort(new Error('client gone')), 50);
  await pending.then(
    () => assert.unreachable('should reject'),
    (err: Error) => assert.is(err.message, 'client gone'),
  );
  assert.is(bucket.waiting, 0);
});

test.run();
