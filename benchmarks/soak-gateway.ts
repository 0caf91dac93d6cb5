// The gateway process of the soak run: `dropftp serve` (its configuration loader, defaults, limits
// and JSON log, then the same startDropftp() call) plus an IPC side door for the soak driver: the
// local box's URL, fault spec and counts, and the gateway's own counters. Runs as a child process
// (main thread). Invariant: it adds no behaviour to the gateway; IPC only reads counters or sets the
// box's faults (which `dropftp serve` cannot reach: its box's admin token never leaves the process).

import { resolve } from 'node:path';
import { loadConfig } from '../src/config/load.ts';
import { toDropftpOptions } from '../src/config/to-options.ts';
import { createLogger } from '../src/log/logger.ts';
import { startDropftp } from '../src/server.ts';
import { limitHeapGrowth } from '../src/util/heap-growth.ts';
import type { FaultSpec } from '../src/localbox/types.ts';

type Request = { id: number; type: 'faults'; spec: FaultSpec } | { id: number; type: 'faultCounts' } | { id: number; type: 'counters' } | { id: number; type: 'stop' };

limitHeapGrowth(); // as serveCommand does
const dataDir = resolve(process.argv[2] ?? './data');
// As `dropftp serve --listen 127.0.0.1:0 --data-dir DIR [more flags]` would run (DROPFTP_* env too).
const { config } = loadConfig({ argv: ['--listen', '127.0.0.1:0', '--data-dir', dataDir, ...process.argv.slice(3)], file: null });
const service = await startDropftp(toDropftpOptions(config, createLogger(config.log)));

process.on('message', (raw: unknown) => {
  const msg = raw as Request;
  const answer = (value: unknown): void => void process.send!({ id: msg.id, ok: true, value });
  const fail = (err: unknown): void => void process.send!({ id: msg.id, ok: false, message: (err as Error).message });
  switch (msg.type) {
    case 'faults':
      service.box.setFaults(msg.spec).then(() => answer(null), fail);
      break;
    case 'faultCounts':
      service.box.faultCounts().then(answer, fail);
      break;
    case 'counters': {
      const engine = service.engine.stats();
      const main = process.memoryUsage();
      const workers = engine.workerHeaps;
      const sum = (pick: (h: (typeof workers)[number]) => number): number => workers.reduce((a, h) => a + pick(h), 0);
      answer({
        sessions: service.ftp.connectionCount,
        passiveListeners: service.ftp.passivePorts.open,
        activeDownloads: engine.activeDownloads,
        activeUploads: engine.activeUploads,
        ringBytesInUse: engine.memory.ringBytesInUse,
        retries: engine.retries,
        throttles: engine.throttles,
        workerCrashes: engine.workerCrashes,
        heapUsedBytes: main.heapUsed,
        // Where the RSS is: the main isolate's heap and buffers, the worker isolates' heaps.
        heapTotalBytes: main.heapTotal,
        arrayBuffersBytes: main.arrayBuffers,
        workerHeapUsedBytes: sum((h) => h.heapUsedBytes),
        workerHeapTotalBytes: sum((h) => h.heapTotalBytes),
        workerExternalBytes: sum((h) => h.externalBytes),
        boxPid: service.box.pid,
      });
      break;
    }
    case 'stop':
      service.close().then(() => {
        answer(null);
        process.disconnect();
      }, fail);
      break;
    default:
      fail(new Error(`unknown soak message ${JSON.stringify(raw)}`));
  }
});

process.send!({ type: 'ready', port: service.port, boxUrl: service.box.url, user: service.createdUser?.name, password: service.createdUser?.password });
