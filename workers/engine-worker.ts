// The piscina task function of the transfer workers: one call = one transfer, pinned to this
// thread until it returns. Runs in each worker thread (and on main in onlyMainThread mode, through
// runTask). Invariants: never throws (every failure is a TaskResult with a wire error); the control
// block arrives once per thread in workerData and the thread context is created once.

import { workerData } from 'node:worker_threads';
import type { ControlHandle } from '../src/transfer/shared-layout.ts';
import type { EngineTask, TaskResult } from '../src/transfer/task-wire.ts';
import { runDownload } from './download-task.ts';
import { createThreadContext } from './thread-context.ts';
import type { ThreadContext } from './thread-context.ts';
import { runUpload } from './upload-task.ts';

export async function runTask(ctx: ThreadContext, task: EngineTask): Promise<TaskResult> {
  try {
    if (task.kind === 'download') return await runDownload(ctx, task);
    if (task.kind === 'upload') return await runUpload(ctx, task);
    return { ok: false, error: { code: 'DROPFTP_ERR_INTERNAL', message: `unknown task kind ${(task as { kind: unknown }).kind}` } };
  } catch (err) {
    return { ok: false, error: { code: 'DROPFTP_ERR_INTERNAL', message: `transfer task threw: ${err instanceof Error ? err.stack ?? err.message : String(err)}` } };
  }
}

let context: ThreadContext | null = null;

export default function engineWorkerTask(task: EngineTask): Promise<TaskResult> {
  context ??= createThreadContext((workerData as { control: ControlHandle }).control);
  return runTask(context, task);
}
