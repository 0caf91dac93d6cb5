// What a run spent per unit delivered (issue #14 item 7): backend calls per transfer by route, as
// the backend itself counted them, and CPU-seconds per GiB moved of the gateway process, of its
// main thread (/proc/<pid>/task/<pid>/stat) and of the backend, and the minor page faults per GiB of
// the gateway and of the backend (memory first touched: see readMinorFaults). Runs on the
// benchmark's main thread.
// Invariants: counters are read at the same two instants for every process; a process without a
// separate backend (its own storage) reports gateway figures only; nothing here throws on a
// vanished process (NaN becomes null).

import type { BackendCalls, PeerInstance } from '../peers/types.ts';
import { readMinorFaults, readOwnCpuSeconds } from './proc-stats.ts';
import type { TransferRecord } from './meter.ts';

interface CpuMark {
  gateway: number;
  mainThread: number;
  backend: number;
  gatewayFaults: number;
  backendFaults: number;
}

export interface RunCost {
  /** Payload bytes the transfers moved (complete or not). */
  bytesMoved: number;
  transfers: number;
  /**
   * CPU-seconds per GiB moved: the gateway process (the server itself where it has no separate
   * backend), its main thread, the backend, the load generator (its transfer phase: cpuSeconds of
   * runLoad), and the whole path, each process once (gateway + backend + load generator). On a
   * machine whose cores the run saturates, servers' MB/s go as the inverse of their paths' figures.
   */
  cpuSecPerGiB: { gateway: number | null; mainThread: number | null; backend: number | null; loadGenerator: number | null; path: number | null };
  /** Minor page faults per GiB moved (thousands), gateway process and backend process. */
  minorFaultsKPerGiB: { gateway: number | null; backend: number | null };
  retrTransfers: number;
  storTransfers: number;
  /** Backend calls by route over the run, counted by the backend (null: no backend the run can see). */
  calls: Record<string, number> | null;
  /**
   * Backend calls per transfer by route: download routes per RETR, upload routes (files/upload*)
   * per STOR, any other route (metadata, sync feed) per transfer of either kind.
   */
  callsPerTransfer: Record<string, number> | null;
  /** Backend reply statuses by route. */
  callStatuses: Record<string, Record<string, number>> | null;
  /** Bytes the backend served per RETR byte / received per STOR byte (1.0 = nothing read or sent twice). */
  backendBytesPerByte: { served: number; received: number } | null;
  /** Backend calls in all, and the share of them answered 429 (refused calls count: Dropbox counts them too). */
  totalCalls: number | null;
  share429: number | null;
  /** Calls a STOR cost on average: the upload routes plus get_metadata (asked by any transfer), per STOR. */
  callsPerStor: number | null;
  /** Retry-After windows the backend announced, and calls that arrived inside one (see the box's limits). */
  retryAfterWindows: BackendCalls['retryAfterWindows'] | null;
}

function mark(instance: PeerInstance): CpuMark {
  const backendPid = instance.backend?.pid ?? null;
  const separate = backendPid !== null && backendPid !== instance.pid;
  const gateway = separate || backendPid === null; // the served process is a gateway of its own
  return {
    gateway: gateway ? readOwnCpuSeconds(instance.pid) : NaN,
    mainThread: separate ? readOwnCpuSeconds(instance.pid, instance.pid) : NaN,
    backend: backendPid !== null ? readOwnCpuSeconds(backendPid) : NaN,
    gatewayFaults: gateway ? readMinorFaults(instance.pid) : NaN,
    backendFaults: backendPid !== null ? readMinorFaults(backendPid) : NaN,
  };
}

/** Starts counting: resets the backend's call counters and marks every process's CPU time. */
export async function startCost(instance: PeerInstance): Promise<(transfersDone: TransferRecord[], loadGeneratorCpuSeconds?: number) => Promise<RunCost>> {
  await instance.backend?.resetCalls().catch(() => {});
  const before = mark(instance);
  return async (transfersDone: TransferRecord[], loadGeneratorCpuSeconds?: number): Promise<RunCost> => {
    const after = mark(instance);
    const calls: BackendCalls | null = instance.backend ? await instance.backend.calls().catch(() => null) : null;
    const records = transfersDone;
    const bytesMoved = records.reduce((n, t) => n + t.bytes, 0);
    const gib = bytesMoved / 2 ** 30;
    const per = (a: number, b: number): number | null => (Number.isFinite(a) && Number.isFinite(b) && gib > 0 ? Math.round(((b - a) / gib) * 100) / 100 : null);
    const kPer = (a: number, b: number): number | null => (Number.isFinite(a) && Number.isFinite(b) && gib > 0 ? Math.round((b - a) / gib / 100) / 10 : null);
    const n = records.length;
    const retr = records.filter((t) => t.op === 'RETR');
    const stor = records.filter((t) => t.op === 'STOR');
    const retrBytes = retr.reduce((b, t) => b + t.bytes, 0);
    const storBytes = stor.reduce((b, t) => b + t.bytes, 0);
    const divisor = (route: string): number => (route.startsWith('files/download') ? retr.length : route.startsWith('files/upload') ? stor.length : n);
    const ratio = (a: number, b: number): number => (b > 0 ? Math.round((a / b) * 1000) / 1000 : 0);
    return {
      bytesMoved,
      transfers: n,
      retrTransfers: retr.length,
      storTransfers: stor.length,
      calls: calls ? Object.fromEntries(Object.entries(calls.routes).map(([route, r]) => [route, r.calls])) : null,
      cpuSecPerGiB: cpuFigures(per(before.gateway, after.gateway), per(before.mainThread, after.mainThread), per(before.backend, after.backend), loadGeneratorCpuSeconds === undefined ? null : per(0, loadGeneratorCpuSeconds)),
      minorFaultsKPerGiB: { gateway: kPer(before.gatewayFaults, after.gatewayFaults), backend: kPer(before.backendFaults, after.backendFaults) },
      callsPerTransfer: calls && n ? Object.fromEntries(Object.entries(calls.routes).map(([route, r]) => [route, Math.round((r.calls / Math.max(1, divisor(route))) * 100) / 100])) : null,
      callStatuses: calls ? Object.fromEntries(Object.entries(calls.routes).map(([route, r]) => [route, r.status])) : null,
      backendBytesPerByte: calls ? { served: ratio(calls.bytes.served, retrBytes), received: ratio(calls.bytes.received, storBytes) } : null,
      totalCalls: calls ? total(calls) : null,
      share429: calls ? ratio(Object.values(calls.routes).reduce((k, r) => k + (r.status['429'] ?? 0), 0), total(calls)) : null,
      callsPerStor:
        calls && stor.length
          ? ratio(
              Object.entries(calls.routes)
                .filter(([route]) => route.startsWith('files/upload') || route === 'files/get_metadata')
                .reduce((k, [, r]) => k + r.calls, 0),
              stor.length,
            )
          : null,
      retryAfterWindows: calls?.retryAfterWindows ?? null,
    };
  };
}

/** The per-GiB figures with the path's sum (null unless the load generator's is known and one server figure is). */
export function cpuFigures(gateway: number | null, mainThread: number | null, backend: number | null, loadGenerator: number | null): RunCost['cpuSecPerGiB'] {
  const path = loadGenerator === null || (gateway === null && backend === null) ? null : Math.round(((gateway ?? 0) + (backend ?? 0) + loadGenerator) * 100) / 100;
  return { gateway, mainThread, backend, loadGenerator, path };
}

function total(calls: BackendCalls): number {
  return Object.values(calls.routes).reduce((k, r) => k + r.calls, 0);
}

/** One line per run for the summary. */
export function costLine(server: string, cost: RunCost | null): string {
  if (!cost) return `${server}: no cost figures`;
  const c = cost.cpuSecPerGiB;
  const calls = cost.callsPerTransfer ? Object.entries(cost.callsPerTransfer).map(([r, v]) => `${r} ${v}`).join(', ') : 'not counted';
  const bytes = cost.backendBytesPerByte ? `; backend served ${cost.backendBytesPerByte.served} B per RETR byte, received ${cost.backendBytesPerByte.received} B per STOR byte` : '';
  const w = cost.retryAfterWindows;
  const started = w?.startedInside !== undefined ? `; started (by the caller's own clock) after the window's first 429 left: ${w.startedInside} (${w.startedInsideLate ?? 0} by 100 ms or more; at most ${w.startedInsideMaxMs ?? 0} ms)` : '';
  const limited = w && w.windows > 0 ? `; ${w.windows} Retry-After windows announced, calls arriving inside one: ${w.callsInside} (${w.callsInsideLate} later than 100 ms after its 429)${started}` : '';
  const totals = cost.totalCalls !== null ? `; ${cost.totalCalls} backend calls, ${((cost.share429 ?? 0) * 100).toFixed(1)} % answered 429, ${cost.callsPerStor ?? '-'} calls per STOR` : '';
  const f = cost.minorFaultsKPerGiB;
  return `${server}: CPU-s/GiB gateway ${c.gateway ?? '-'}, main thread ${c.mainThread ?? '-'}, backend ${c.backend ?? '-'}, load generator ${c.loadGenerator ?? '-'}, the whole path ${c.path ?? '-'}; minor faults (thousands per GiB) gateway ${f.gateway ?? '-'}, backend ${f.backend ?? '-'}; backend calls (download routes per RETR, upload routes per STOR, others per transfer): ${calls}${bytes}${totals}${limited}`;
}
