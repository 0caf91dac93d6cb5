// Where transfer tasks run: a piscina pool of long-lived I/O workers, or (the baseline) the main
// thread itself through the very same task code. Main thread. Invariants: a task is posted once and
// runs on one worker for its whole life (never an AbortSignal: cancel goes through the ring header);
// run() never rejects — a worker that dies turns its tasks into DROPFTP_ERR_WORKER_CRASHED results,
// its pacer tickets, buffer and spool accounting are reclaimed (its spool files removed through
// `onReclaim`), and piscina starts a replacement.

import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { EXTRA_WORKER_IDLE_MS, INITIAL_WORKERS, WARM_UP, growingBalancer, placementOf, warmUpTarget, type PlacementOptions, type WarmUpOptions } from './pool-growth.ts';
import { reclaimWorkerSlot, workerSlotKeys } from './shared-layout.ts';
import type { ControlHandle } from './shared-layout.ts';
import type { EngineTask, TaskResult } from './task-wire.ts';

export interface Executor {
  readonly threads: number;
  run(task: EngineTask): Promise<TaskResult>;
  /** Worker crashes seen so far. */
  crashes(): number;
  /** Worker threads alive now (the pool grows from one up to `threads`; the main-thread executor: 0). */
  liveThreads(): number;
  /** Worker threads that finished starting (those the balancer may give a transfer). */
  readyThreads(): number;
  /** Transfers handed to run() that no worker has taken yet (waiting in piscina's queue). */
  queued(): number;
  /** piscina's pool utilisation (0..1; the main-thread executor: null). */
  utilization(): number | null;
  /** Starts the first worker now if none was started yet (else the first run() does). */
  warm(): void;
  /** Starts workers (at most `threads`, at most the maximum) ahead of the transfers that will need them. */
  prewarm(threads: number): void;
  close(): Promise<void>;
  destroy(): Promise<void>;
}

// Compiled (dist/) the worker runs dist/workers/engine-worker.js directly; from source (under tsx)
// engine-worker.mjs registers tsx first (Node 20 workers do not inherit `--import`).
const WORKER_ENTRY = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '../../workers/engine-worker.mjs' : '../../workers/engine-worker.js', import.meta.url));

/**
 * Young generation of each worker isolate, MiB. A worker's live heap is ~15 MiB and its garbage is
 * short-lived (response chunks, promises), but V8's default grows the young generation to ~48 MiB
 * under a high allocation rate and keeps it: the soak saw worker heaps swing 32 → 95 MiB committed
 * with the load phase while the used part stayed near 30 MiB. 12 MiB (4 MiB semi-spaces) keeps
 * scavenges cheap and the RSS steady.
 */
export const WORKER_YOUNG_GENERATION_MB = 12;

/**
 * The pool executor. `lazy`: no worker starts until warm() or the first run() (a server starts its
 * first worker once it listens, so that the worker's boot does not compete with its start-up).
 */
export function createPoolExecutor(control: ControlHandle, threads: number, onReclaim: (threadKey: number) => void = () => {}, lazy = false): Executor {
  const words = new Int32Array(control.sab);
  let crashes = 0;
  let created: Piscina | null = null;
  let warming = false;
  const ready = new Set<number>();
  // Transfers submitted and dispatched (the balancer gave each a worker), for queued().
  const counts = { submitted: 0, dispatched: 0 };
  // Transfers running on each worker, by kind (the balancer spreads each kind over the workers).
  const byKind = new Map<number, { download: number; upload: number }>();
  const open = (): Piscina => (created ??= startPool(control, threads, words, onReclaim, () => crashes++, ready, counts, byKind));
  if (!lazy) open();
  return {
    threads,
    run(task) {
      counts.submitted++;
      const placement: PlacementOptions | null = task.kind === 'download' || task.kind === 'upload' ? { kind: task.kind, workerId: null } : null;
      const posted = placement ? { ...task, [WARM_UP]: placement } : task;
      return (open().run(posted) as Promise<TaskResult>)
        .catch((err: unknown) => {
          crashes++;
          return {
            ok: false as const,
            error: {
              code: 'DROPFTP_ERR_WORKER_CRASHED' as const,
              message: `transfer worker failed: ${err instanceof Error ? err.message : String(err)}`,
            },
          };
        })
        .finally(() => {
          const on = placement?.workerId != null ? byKind.get(placement.workerId) : undefined;
          if (on && placement) on[placement.kind] = Math.max(0, on[placement.kind] - 1);
        });
    },
    crashes: () => crashes,
    liveThreads: () => created?.threads.length ?? 0,
    readyThreads: () => ready.size,
    queued: () => counts.submitted - counts.dispatched,
    utilization: () => created?.utilization ?? 0,
    warm: () => void open(),
    prewarm(wanted) {
      const target = Math.min(wanted, threads);
      const pool = open();
      if (warming || pool.threads.length >= target) return;
      // A no-op task the balancer refuses until the pool has `target` threads: piscina starts one
      // (the worker answers the unknown kind with an error result, which nobody reads). It carries
      // an abort signal (never aborted) so that, refused, it waits in piscina's skip queue: a task
      // left in its task queue made every later transfer queue behind it, so the whole pool (ready
      // workers included) took nothing until the new worker had booted (piscina 5 runTask).
      warming = true;
      const options: WarmUpOptions = { warmTo: target };
      void pool
        .run({ kind: 'warm-up', [WARM_UP]: options }, { signal: new AbortController().signal })
        .catch(() => {})
        .finally(() => (warming = false));
    },
    async close() {
      await created?.close();
    },
    async destroy() {
      await created?.destroy();
    },
  };
}

function startPool(
  control: ControlHandle,
  threads: number,
  words: Int32Array,
  onReclaim: (threadKey: number) => void,
  onCrash: () => void,
  /** Workers that finished starting (piscina's 'workerCreate'): the balancer dispatches only to these. */
  ready: Set<number>,
  counts: { dispatched: number },
  byKind: Map<number, { download: number; upload: number }>,
): Piscina {
  const sameKind = (workerId: number, task: Parameters<typeof balance>[0]): number => {
    const placement = placementOf(task);
    return placement ? (byKind.get(workerId)?.[placement.kind] ?? 0) : 0;
  };
  const balance = growingBalancer(threads, (): number => pool.threads.length, (id) => ready.has(id), sameKind);
  const pool: Piscina = new Piscina({
    filename: WORKER_ENTRY,
    // Starts small and grows with load up to `threads` (pool-growth.ts).
    minThreads: Math.min(INITIAL_WORKERS, threads),
    maxThreads: threads,
    idleTimeout: EXTRA_WORKER_IDLE_MS,
    // Counts the transfers it dispatches (piscina asks again for a task it queued: only the answer that names a worker counts).
    loadBalancer: (task, workers) => {
      const worker = balance(task, workers);
      if (worker !== null && warmUpTarget(task) === undefined) {
        counts.dispatched++;
        const placement = placementOf(task);
        if (placement) {
          placement.workerId = worker.id;
          let on = byKind.get(worker.id);
          if (!on) byKind.set(worker.id, (on = { download: 0, upload: 0 }));
          on[placement.kind]++;
        }
      }
      return worker;
    },
    // Workers own sockets and timers: their event loop must run between tasks (sync mode freezes it).
    atomics: 'disabled',
    concurrentTasksPerWorker: 1 << 20,
    maxQueue: Infinity,
    workerData: { control },
    resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
  });
  pool.on('workerCreate', (worker: { id: number }) => ready.add(worker.id));
  // A dead worker's threadId already reads -1 here (its stale `ready` entry is harmless: thread ids
  // are never reused), so find dead slots by elimination: any slot of a worker thread
  // (key = threadId + 1 ≥ 2) whose thread is no longer among the pool's live threads.
  pool.on('workerDestroy', (worker: { id: number }) => {
    ready.delete(worker.id);
    byKind.delete(worker.id);
    setImmediate(() => {
      const live = new Set(pool.threads.map((t) => t.threadId + 1).filter((key) => key >= 2));
      for (const key of workerSlotKeys(words)) {
        if (key >= 2 && !live.has(key)) {
          reclaimWorkerSlot(words, key);
          onReclaim(key);
        }
      }
    });
  });
  // A worker dying with no task in flight is reported here; piscina replaces it either way.
  pool.on('error', onCrash);
  return pool;
}

export async function createMainThreadExecutor(control: ControlHandle): Promise<Executor> {
  const { runTask } = await import('../../workers/engine-worker.ts');
  const { createThreadContext } = await import('../../workers/thread-context.ts');
  const ctx = createThreadContext(control);
  let active = 0;
  let idle: (() => void) | null = null;
  return {
    threads: 0,
    async run(task) {
      active++;
      try {
        return await runTask(ctx, task);
      } finally {
        if (--active === 0 && idle) idle();
      }
    },
    crashes: () => 0,
    liveThreads: () => 0,
    readyThreads: () => 0,
    queued: () => 0,
    utilization: () => null,
    warm: () => {},
    prewarm: () => {},
    async close() {
      if (active > 0) await new Promise<void>((resolve) => (idle = resolve));
      ctx.direct.close();
      await ctx.agent.close();
    },
    async destroy() {
      ctx.direct.destroy();
      await ctx.agent.destroy();
    },
  };
}
