// A second real thread for the pacer tests: takes tickets of account slot 0 on the shared control
// block when told, reports each call ok, and sends back when each was admitted. Worker thread.
import { register } from 'tsx/esm/api';

register();
const { parentPort, workerData } = await import('node:worker_threads');
const { SharedPacer } = await import('../../../src/dropbox/pacer.ts');
const { claimWorkerSlot } = await import('../../../src/transfer/shared-layout.ts');

const words = new Int32Array(workerData.control.sab);
const pacer = new SharedPacer(workerData.control, claimWorkerSlot(words, workerData.threadKey));
parentPort.on('message', async (m) => {
  if (m.op !== 'admit') return;
  const grants = [];
  const waits = m.ids.map((id) =>
    pacer.admit(0).then((ok) => {
      grants.push({ id, ok, atMs: performance.timeOrigin + performance.now() });
      pacer.report(0, { kind: 'ok' });
    }),
  );
  parentPort.postMessage({ op: 'queued' });
  await Promise.all(waits);
  parentPort.postMessage({ op: 'done', grants });
});
