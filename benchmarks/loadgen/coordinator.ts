// The load generator's coordinator: splits N sessions over child processes, holds them at a
// barrier until every one is logged in, starts them together ('go'), stops idle and churn runs, and
// gathers the children's results. Runs on the benchmark's main thread. Invariants: every child is
// killed when the run ends or fails; a child that dies before sending its result fails the run.

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { nowMs } from './meter.ts';
import type { Counters, FromChild, ToChild, WorkerConfig, WorkerResult } from './protocol.ts';

const CHILD = fileURLToPath(new URL('./child.ts', import.meta.url));

export type LoadOptions = Omit<WorkerConfig, 'firstId' | 'count' | 'checkpointCount'> & {
  sessions: number;
  /** idle: pause the login phase once this many sessions are logged in and call onCheckpoint (0: none). */
  checkpointSessions?: number;
  /** Called once the checkpoint's sessions are logged in, before the rest log in. */
  onCheckpoint?(counters: Counters): Promise<void> | void;
  procs: number;
  /** idle: how long sessions stay after all logged in. */
  holdMs: number;
  /** The whole run fails after this long. */
  runTimeoutMs: number;
  onProgress?(counters: Counters, phase: Phase): void;
  /** Called once every session is logged in, before 'go' (idle samples RSS here). */
  onReady?(counters: Counters): Promise<void> | void;
  /** Called once after 'go' when idle sessions have been held (before 'stop'). */
  onHeld?(): Promise<void> | void;
};

export type Phase = 'login' | 'run' | 'stopping';

export interface RawRun {
  readyMs: number;
  epochMs: number;
  endMs: number;
  counters: Counters;
  results: WorkerResult[];
  /** CPU-seconds the load generator processes spent from 'go' to their results, all together. */
  cpuSeconds: number;
}

function sum(list: Counters[]): Counters {
  const out: Counters = { loggedIn: 0, loginFailed: 0, active: 0, done: 0, failed: 0, bytes: 0 };
  for (const c of list) for (const k of Object.keys(out) as (keyof Counters)[]) out[k] += c[k];
  return out;
}

export async function runLoad(options: LoadOptions): Promise<RawRun> {
  const { sessions, procs: wantProcs, holdMs, runTimeoutMs, onProgress, onReady, onHeld, checkpointSessions = 0, onCheckpoint, ...base } = options;
  if (checkpointSessions && (base.scenario !== 'idle' || checkpointSessions >= sessions)) throw new Error(`a checkpoint (${checkpointSessions}) needs the idle scenario and fewer sessions than ${sessions}`);
  const procs = Math.max(1, Math.min(wantProcs, sessions));
  const children: ChildProcess[] = [];
  const counters: Counters[] = [];
  const results: (WorkerResult | null)[] = [];
  let cpuSeconds = 0;
  let phase: Phase = 'login';
  let readyCount = 0;
  let checkpointCount = 0;
  let doneCount = 0;
  let readyResolve!: () => void;
  let doneResolve!: () => void;
  let fail!: (err: Error) => void;
  let checkpointResolve!: () => void;
  const checkpoint = new Promise<void>((resolve) => (checkpointResolve = resolve));
  const ready = new Promise<void>((resolve) => (readyResolve = resolve));
  const done = new Promise<void>((resolve) => (doneResolve = resolve));
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => {});

  let firstId = 0;
  for (let i = 0; i < procs; i++) {
    const count = Math.floor(sessions / procs) + (i < sessions % procs ? 1 : 0);
    // The checkpoint's sessions are split over the children like the sessions themselves.
    const before = checkpointSessions ? Math.min(count, Math.floor(checkpointSessions / procs) + (i < checkpointSessions % procs ? 1 : 0)) : 0;
    const config: WorkerConfig = { ...base, firstId, count, checkpointCount: before };
    firstId += count;
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(child);
    counters.push({ loggedIn: 0, loginFailed: 0, active: 0, done: 0, failed: 0, bytes: 0 });
    results.push(null);
    child.on('message', (m: FromChild) => {
      switch (m.type) {
        case 'progress':
          counters[i] = m.counters;
          break;
        case 'checkpoint':
          counters[i] = m.counters;
          if (++checkpointCount === procs) checkpointResolve();
          break;
        case 'ready':
          counters[i] = m.counters;
          if (++readyCount === procs) readyResolve();
          break;
        case 'result':
          counters[i] = m.counters;
          results[i] = m.result;
          cpuSeconds += m.cpuSeconds;
          if (++doneCount === procs) doneResolve();
          break;
        case 'fatal':
          fail(new Error(`load generator child ${i}: ${m.message}`));
          break;
        default:
          fail(new Error(`load generator child ${i}: unknown message ${JSON.stringify(m)}`));
      }
    });
    child.on('exit', (code, signal) => {
      if (results[i] === null) fail(new Error(`load generator child ${i} exited (code ${code}, signal ${signal}) without a result`));
    });
    child.send({ type: 'config', config } satisfies ToChild);
  }

  const broadcast = (m: ToChild): void => {
    for (const c of children) if (c.connected) c.send(m);
  };
  const progress = setInterval(() => onProgress?.(sum(counters), phase), 500);
  const deadline = setTimeout(() => fail(new Error(`run exceeded ${runTimeoutMs} ms`)), runTimeoutMs);
  try {
    if (checkpointSessions) {
      await Promise.race([checkpoint, failed]);
      await onCheckpoint?.(sum(counters));
      broadcast({ type: 'continue' });
    }
    await Promise.race([ready, failed]);
    const readyMs = nowMs();
    await onReady?.(sum(counters));
    const epochMs = nowMs() + 20;
    phase = 'run';
    broadcast({ type: 'go', epochMs });
    if (base.scenario === 'idle') {
      await Promise.race([new Promise((r) => setTimeout(r, holdMs)), failed]);
      await onHeld?.();
      phase = 'stopping';
      broadcast({ type: 'stop' });
    }
    await Promise.race([done, failed]);
    const endMs = nowMs();
    return { readyMs, epochMs, endMs, counters: sum(counters), results: results as WorkerResult[], cpuSeconds };
  } finally {
    clearInterval(progress);
    clearTimeout(deadline);
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}
