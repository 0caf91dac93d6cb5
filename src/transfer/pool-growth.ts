// How the transfer worker pool grows: it starts with one worker and adds one (up to maxThreads)
// only when every worker already carries GROW_AT_TASKS transfers (or, ahead of a burst, up to
// PREWARM_WORKERS once many sessions are connected), so an idle gateway on a 96-core host holds one
// or two isolates, not 96. Main thread (piscina calls the balancer on each dispatch).
// Invariant: never picks a worker running an abortable task (the engine posts none but its warm-ups,
// which carry a signal only to stay out of the way of transfers: executor.ts); pure function.

import type { Piscina } from 'piscina';

type PoolOptions = NonNullable<ConstructorParameters<typeof Piscina>[0]>;
export type PoolBalancer = NonNullable<PoolOptions['loadBalancer']>;

/** Workers the pool starts with (the rest start on demand). */
export const INITIAL_WORKERS = 1;
/** Concurrent transfers on the least busy worker at which another worker is started. */
export const GROW_AT_TASKS = 4;
/** An extra worker (above INITIAL_WORKERS) with no transfer for this long is stopped. */
export const EXTRA_WORKER_IDLE_MS = 60_000;
/**
 * Workers kept started ahead of demand once more than GROW_AT_TASKS FTP sessions are connected: a
 * burst of transfers from those sessions then finds them booted (a worker's boot, ~1 s on a loaded
 * 2-core host, was the first wait of every RETR of a 200-session storm). Beyond this, growth is on
 * demand, so idle sessions on a many-core host do not hold many isolates.
 */
export const PREWARM_WORKERS = 2;

/**
 * A task's queue options: piscina shows them to the balancer (the property is a symbol, so the
 * structured clone the worker gets leaves it out). A warm-up's say how many workers to start; a
 * transfer's say its kind and, once placed, which worker took it (executor.ts counts by them).
 */
export const WARM_UP = Symbol.for('Piscina.queueOptions');
export interface WarmUpOptions {
  /** Start workers until the pool has this many. */
  warmTo: number;
}
export interface PlacementOptions {
  /** Transfers of one kind are spread over the workers apart from those of the other. */
  kind: 'download' | 'upload';
  /** The worker the balancer gave it (null until then). */
  workerId: number | null;
}

/** The pool size a warm-up task asks for; undefined for a transfer (piscina shows the balancer its task's queue options). */
export function warmUpTarget(task: Parameters<PoolBalancer>[0]): number | undefined {
  return (task as { [WARM_UP]?: WarmUpOptions | null })[WARM_UP]?.warmTo;
}

/** A transfer's placement options (undefined for a warm-up or a task posted without them). */
export function placementOf(task: Parameters<PoolBalancer>[0]): PlacementOptions | undefined {
  const options = (task as { [WARM_UP]?: Partial<PlacementOptions> | null })[WARM_UP];
  return options && (options.kind === 'download' || options.kind === 'upload') ? (options as PlacementOptions) : undefined;
}

/**
 * Least-busy dispatch that grows the pool: an idle ready worker if there is one; else, when even the
 * least busy ready worker runs GROW_AT_TASKS transfers and the pool is below maxThreads, or a worker
 * is still starting, no worker — piscina queues the task, starts a worker if it may, and dispatches
 * the queue again once one is ready, so a burst spreads over the new workers instead of piling onto
 * the first; else the ready worker with the fewest transfers of the task's kind (`sameKind`), the
 * least busy among those. A worker that is still starting (`isReady` false: piscina hands the
 * balancer its pending workers too when a task ends) is never picked: a transfer posted to it would
 * wait for its whole start-up (seconds under load) before its first byte.
 *
 * Why by kind: least-busy alone, with ties to the first worker, put every download of a storm whose
 * sessions alternate RETR and STOR on one worker and every upload on the other, so one event loop
 * started all the downloads' calls while it moved their bytes. Spread by kind (storm of 200 x 10 MiB,
 * six alternating pairs, ties broken at random for the experiment): gateway 2.33-2.65 against
 * 2.45-2.72 CPU-s/GiB, lower in all six; Jain within RETR >= 0.95 in five of six against three.
 */
export function growingBalancer(
  maxThreads: number,
  poolSize: () => number,
  isReady: (workerId: number) => boolean = () => true,
  sameKind: (workerId: number, task: Parameters<PoolBalancer>[0]) => number = () => 0,
): PoolBalancer {
  return (task, workers) => {
    // A warm-up task (a no-op) is refused while the pool is below its target, so that piscina starts
    // a worker; then any ready worker runs it at once, and no transfer queues behind it.
    const warmTo = warmUpTarget(task);
    const refuseWarmUp = warmTo !== undefined && poolSize() < Math.min(warmTo, maxThreads);
    let leastBusy: (typeof workers)[number] | null = null;
    let best: (typeof workers)[number] | null = null;
    let bestSame = Infinity;
    let starting = workers.length < poolSize();
    for (const worker of workers) {
      if (worker.isRunningAbortableTask) continue;
      if (!isReady(worker.id)) {
        starting = true;
        continue;
      }
      if (refuseWarmUp) continue;
      if (worker.currentUsage === 0) return worker;
      if (leastBusy === null || worker.currentUsage < leastBusy.currentUsage) leastBusy = worker;
      const same = warmTo === undefined ? sameKind(worker.id, task) : 0;
      if (best === null || same < bestSame || (same === bestSame && worker.currentUsage < best.currentUsage)) {
        best = worker;
        bestSame = same;
      }
    }
    if (refuseWarmUp || warmTo !== undefined) return leastBusy;
    if (leastBusy !== null && leastBusy.currentUsage >= GROW_AT_TASKS && (starting || poolSize() < maxThreads)) return null;
    return best;
  };
}
