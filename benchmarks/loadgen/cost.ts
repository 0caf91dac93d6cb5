// What a run spent per unit delivered (issue #14 item 7): backend calls per transfer by route, as
// the backend itself counted them, and CPU-seconds per GiB moved of the gateway process, of its
// main thread (/proc/<pid>/task/<pid>/stat) and of the backend. Runs on the benchmark's main thread.
// Invariants: counters are read at the same two instants for every process; a process without a
// separate backend (its own storage) reports gateway figures only; nothing here throws on a
// vanished process (NaN becomes null).

import type { BackendCalls, PeerInstance } from '../peers/types.ts';
import { readOwnCpuSeconds } from './proc-stats.ts';
import type { TransferRecord } from './meter.ts';

interface CpuMark {
  gateway: number;
  mainThread: number;
  backend: number;
}

export interface RunCost {
  /** Payload bytes the transfers moved (complete or not). */
  bytesMoved: number;
  transfers: number;
  cpuSecPerGiB: { gateway: number | null; mainThread: number | null; backend: number | null };
  /** Backend calls per transfer by route, counted by the backend (null: no backend the run can see). */
  callsPerTransfer: Record<string, number> | null;
  /** Backend reply statuses by route. */
  callStatuses: Record<string, Record<string, number>> | null;
  /** Bytes the backend served / received per byte moved (1.0 = nothing read or sent twice). */
  backendBytesPerByte: { served: number; received: number } | null;
}

function mark(instance: PeerInstance): CpuMark {
  const backendPid = instance.backend?.pid ?? null;
  const separate = backendPid !== null && backendPid !== instance.pid;
  return {
    gateway: separate || backendPid === null ? readOwnCpuSeconds(instance.pid) : NaN,
    mainThread: separate ? readOwnCpuSeconds(instance.pid, instance.pid) : NaN,
    backend: backendPid !== null ? readOwnCpuSeconds(backendPid) : NaN,
  };
}

/** Starts counting: resets the backend's call counters and marks every process's CPU time. */
export async function startCost(instance: PeerInstance): Promise<(transfersDone: TransferRecord[]) => Promise<RunCost>> {
  await instance.backend?.resetCalls().catch(() => {});
  const before = mark(instance);
  return async (transfersDone: TransferRecord[]): Promise<RunCost> => {
    const after = mark(instance);
    const calls: BackendCalls | null = instance.backend ? await instance.backend.calls().catch(() => null) : null;
    const records = transfersDone;
    const bytesMoved = records.reduce((n, t) => n + t.bytes, 0);
    const gib = bytesMoved / 2 ** 30;
    const per = (a: number, b: number): number | null => (Number.isFinite(a) && Number.isFinite(b) && gib > 0 ? Math.round(((b - a) / gib) * 100) / 100 : null);
    const n = records.length;
    return {
      bytesMoved,
      transfers: n,
      cpuSecPerGiB: { gateway: per(before.gateway, after.gateway), mainThread: per(before.mainThread, after.mainThread), backend: per(before.backend, after.backend) },
      callsPerTransfer: calls && n ? Object.fromEntries(Object.entries(calls.routes).map(([route, r]) => [route, Math.round((r.calls / n) * 100) / 100])) : null,
      callStatuses: calls ? Object.fromEntries(Object.entries(calls.routes).map(([route, r]) => [route, r.status])) : null,
      backendBytesPerByte:
        calls && bytesMoved ? { served: Math.round((calls.bytes.served / bytesMoved) * 1000) / 1000, received: Math.round((calls.bytes.received / bytesMoved) * 1000) / 1000 } : null,
    };
  };
}

/** One line per run for the summary. */
export function costLine(server: string, cost: RunCost | null): string {
  if (!cost) return `${server}: no cost figures`;
  const c = cost.cpuSecPerGiB;
  const calls = cost.callsPerTransfer ? Object.entries(cost.callsPerTransfer).map(([r, v]) => `${r} ${v}`).join(', ') : 'not counted';
  const bytes = cost.backendBytesPerByte ? `; backend served ${cost.backendBytesPerByte.served} B and received ${cost.backendBytesPerByte.received} B per byte moved` : '';
  return `${server}: CPU-s/GiB gateway ${c.gateway ?? '-'}, main thread ${c.mainThread ?? '-'}, backend ${c.backend ?? '-'}; backend calls per transfer: ${calls}${bytes}`;
}
