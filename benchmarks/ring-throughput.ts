// Benchmark: bytes/s from the main thread to a worker through one native-free-ringbuf ring,
// beside MessagePort postMessage with a copy and with a transfer, for chunk sizes 1 KiB..1 MiB,
// all measured in the same run (benny). Saves benchmarks/results/ring-throughput.json (summary)
// and ring-throughput.benny.json (benny's raw results).
// Usage: npm run bench:ring   (env BENCH_OP_MIB: MiB moved per op, default 32; BENCH_MIN_S: seconds per case, default 1)

import { Worker } from 'node:worker_threads';
import { writeFileSync, mkdirSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { add, complete, configure, cycle, save, suite } from 'benny';
import { RingWriter, createRing } from 'native-free-ringbuf';

const BOOT = new URL('./fixtures/ts-worker.mjs', import.meta.url);
const ENTRY = new URL('./fixtures/ring-bench-worker.ts', import.meta.url).href;
const RESULTS = new URL('./results/', import.meta.url);
const OP_BYTES = Number(process.env.BENCH_OP_MIB ?? 32) * 1024 * 1024;
const MIN_S = Number(process.env.BENCH_MIN_S ?? 1);
const CHUNKS = [1024, 4096, 16384, 65536, 262144, 1048576];
type Transport = 'ring' | 'post-copy' | 'post-transfer';

interface Peer {
  worker: Worker;
  op: number;
  run(): Promise<void>;
}

function waitDone(worker: Worker, op: number): Promise<void> {
  return new Promise((resolve) => {
    const onMessage = (m: { done: number }) => {
      if (m.done === op) {
        worker.off('message', onMessage);
        resolve();
      }
    };
    worker.on('message', onMessage);
  });
}

async function startPeer(transport: Transport, chunkBytes: number): Promise<Peer> {
  const capacity = Math.max(1 << 20, chunkBytes * 4);
  const handle = transport === 'ring' ? createRing(capacity) : undefined;
  const worker = new Worker(BOOT, { workerData: { entry: ENTRY, setup: { transport, handle, chunkBytes } } });
  await new Promise((r) => setTimeout(r, 200)); // let the worker load
  const chunk = new Uint8Array(chunkBytes).fill(7);
  const ring = handle ? new RingWriter(handle) : null;
  const peer: Peer = {
    worker,
    op: 0,
    async run() {
      const op = ++peer.op;
      const done = waitDone(worker, op);
      worker.postMessage({ op, bytes: OP_BYTES });
      let sent = 0;
      if (ring) {
        while (sent < OP_BYTES) {
          const n = ring.write(chunk, 0, Math.min(chunk.length, OP_BYTES - sent));
          sent += n;
          if (n === 0) await ring.waitWritable(chunkBytes);
        }
      } else if (transport === 'post-copy') {
        for (; sent < OP_BYTES; sent += chunkBytes) worker.postMessage(chunk);
      } else {
        for (; sent < OP_BYTES; sent += chunkBytes) {
          const buf = new ArrayBuffer(chunkBytes); // a transfer detaches it: each message needs its own
          worker.postMessage(buf, [buf]);
        }
      }
      await done;
    },
  };
  return peer;
}

const summary: Record<string, Record<Transport, number>> = {};
const peers: Peer[] = [];

for (const chunkBytes of CHUNKS) {
  const label = chunkBytes >= 1 << 20 ? `${chunkBytes >> 20} MiB` : `${chunkBytes >> 10} KiB`;
  const byTransport: Record<Transport, Peer> = {
    ring: await startPeer('ring', chunkBytes),
    'post-copy': await startPeer('post-copy', chunkBytes),
    'post-transfer': await startPeer('post-transfer', chunkBytes),
  };
  peers.push(...Object.values(byTransport));
  const result = await suite(
    `main → worker, ${label} chunks, ${OP_BYTES >> 20} MiB per op`,
    configure({ cases: { minTime: MIN_S, maxTime: MIN_S * 2, minSamples: 5 } }),
    add('ring', async () => byTransport.ring.run()),
    add('postMessage copy', async () => byTransport['post-copy'].run()),
    add('postMessage transfer', async () => byTransport['post-transfer'].run()),
    cycle(),
    complete(),
    save({ file: `ring-throughput-${chunkBytes}`, folder: 'benchmarks/results/benny', format: 'json' }),
  );
  const bytesPerSecond = (name: string) => Math.round((result.results.find((r) => r.name === name)?.ops ?? 0) * OP_BYTES);
  summary[label] = {
    ring: bytesPerSecond('ring'),
    'post-copy': bytesPerSecond('postMessage copy'),
    'post-transfer': bytesPerSecond('postMessage transfer'),
  };
  for (const p of Object.values(byTransport)) {
    p.worker.postMessage('stop');
    await p.worker.terminate();
  }
}

const rows = Object.entries(summary).map(([chunk, r]) => ({
  chunk,
  ringGBps: +(r.ring / 1e9).toFixed(2),
  postCopyGBps: +(r['post-copy'] / 1e9).toFixed(2),
  postTransferGBps: +(r['post-transfer'] / 1e9).toFixed(2),
  ringVsTransfer: +(r.ring / r['post-transfer']).toFixed(2),
  ringVsCopy: +(r.ring / r['post-copy']).toFixed(2),
}));
console.table(rows);
mkdirSync(RESULTS, { recursive: true });
writeFileSync(
  new URL('ring-throughput.json', RESULTS),
  JSON.stringify(
    {
      benchmark: 'ring-throughput',
      date: new Date().toISOString(),
      node: process.version,
      cpus: availableParallelism(),
      cpuModel: cpus()[0]?.model,
      opBytes: OP_BYTES,
      unit: 'bytes per second, main thread → worker',
      results: rows,
      raw: summary,
    },
    null,
    2,
  ) + '\n',
);
