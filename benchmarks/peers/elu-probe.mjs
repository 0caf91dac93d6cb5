// Preloaded (node --import) into a Node server under benchmark: appends the main thread's
// event-loop utilisation every 500 ms to $BENCH_ELU_FILE as "<epoch ms> <utilization>" lines.
// Main thread only (workers and other processes are untouched); its timer never keeps the server alive.
import { appendFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { isMainThread } from 'node:worker_threads';

const file = process.env.BENCH_ELU_FILE;
if (isMainThread && file) {
  let last = performance.eventLoopUtilization();
  setInterval(() => {
    const now = performance.eventLoopUtilization();
    const delta = performance.eventLoopUtilization(now, last);
    last = now;
    appendFileSync(file, `${Date.now()} ${delta.utilization.toFixed(4)}\n`);
  }, 500).unref();
}
