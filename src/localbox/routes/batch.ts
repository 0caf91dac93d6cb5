// Batch upload routes (api host, RPC): upload_session/finish_batch_v2 (synchronous),
// finish_batch (v1, async job id) + finish_batch/check, and start_batch (reference §3.3).
// Runs in the local box child. Invariants: results come back in request order; each entry commits
// in its own transaction, so one failure never undoes another entry's success.

import { randomBytes } from 'node:crypto';
import { routeError } from '../api-errors.ts';
import type { Args } from '../args.ts';
import type { Box } from '../box.ts';
import { sendJson, type Ctx } from '../context.ts';
import { metadataJson } from '../metadata.ts';
import { commitTarget, parseCommit, type ParsedCommit, type Route } from './common.ts';
import { finishError } from './files-content.ts';

/**
 * Commits the entries in order under one take of the namespace's write lock; while another call
 * holds it, every entry fails with too_many_write_operations (as Dropbox reports it, per entry) and
 * its session stays as it was, to be retried.
 */
async function finishEntries(ctx: Ctx, entries: Args[], box: Box, ns: number): Promise<Record<string, unknown>[]> {
  // parse every entry first: a malformed entry fails the whole call with a 400, as stone validation does
  const parsed = entries.map((e) => {
    const c = e.struct('cursor')!;
    return { sessionId: c.str('session_id'), offset: c.uint('offset'), commit: parseCommit(ctx.route, e.struct('commit')!, ns) };
  });
  const hold = box.limits.tryLock(ns);
  if (!hold) {
    ctx.call.noteLimit('too_many_write_operations', parsed.length);
    return parsed.map(() => ({ '.tag': 'failure', failure: { '.tag': 'too_many_write_operations' } }));
  }
  try {
    const results = commitEntries(parsed, box, ns);
    await hold.finish();
    return results;
  } finally {
    hold.release();
  }
}

function commitEntries(parsed: { sessionId: string; offset: number; commit: ParsedCommit }[], box: Box, ns: number): Record<string, unknown>[] {
  return parsed.map(({ sessionId, offset, commit }) => {
    try {
      const content = box.sessions.collect(sessionId, ns, offset, true);
      const row = box.db.transaction(() => {
        const r = box.ns.commitFile(ns, commitTarget(box, ns, commit.path), commit.opts, content);
        box.sessions.drop(sessionId);
        return r;
      })();
      return { '.tag': 'success', ...metadataJson(row, false) };
    } catch (err) {
      const union = finishError(err);
      if (!union) throw err;
      return { '.tag': 'failure', failure: union };
    }
  });
}

const finishBatchV2: Route = {
  name: 'files/upload_session/finish_batch_v2',
  style: 'rpc',
  auth: 'user',
  async handle(ctx, box) {
    const entries = ctx.args.list('entries', 1000);
    sendJson(ctx.res, { entries: await finishEntries(ctx, entries, box, ctx.account!.ns) });
  },
};

/** How long finish_batch (v1) keeps a job's result for finish_batch/check. */
export const BATCH_JOB_TTL_MS = 24 * 3600 * 1000;

const finishBatchV1: Route = {
  name: 'files/upload_session/finish_batch',
  style: 'rpc',
  auth: 'user',
  async handle(ctx, box) {
    const entries = ctx.args.list('entries', 1000);
    const result = { '.tag': 'complete', entries: await finishEntries(ctx, entries, box, ctx.account!.ns) };
    const id = `dbjid:${randomBytes(24).toString('base64url')}`;
    const now = Date.now();
    // A job's result is kept for BATCH_JOB_TTL_MS, then forgotten (its id then answers invalid_async_job_id).
    box.db.prepare('DELETE FROM batch_jobs WHERE created_ms < ?').run(now - BATCH_JOB_TTL_MS);
    box.db.prepare('INSERT INTO batch_jobs VALUES (?, ?, ?)').run(`${ctx.account!.ns}:${id}`, JSON.stringify(result), now);
    sendJson(ctx.res, { '.tag': 'async_job_id', async_job_id: id });
  },
};

const finishBatchCheck: Route = {
  name: 'files/upload_session/finish_batch/check',
  style: 'rpc',
  auth: 'user',
  async handle(ctx, box) {
    const id = ctx.args.str('async_job_id');
    const row = box.db.prepare('SELECT result FROM batch_jobs WHERE id = ?').get(`${ctx.account!.ns}:${id}`) as
      | { result: string }
      | undefined;
    if (!row) throw routeError({ '.tag': 'invalid_async_job_id' });
    sendJson(ctx.res, JSON.parse(row.result));
  },
};

const startBatch: Route = {
  name: 'files/upload_session/start_batch',
  style: 'rpc',
  auth: 'user',
  async handle(ctx, box) {
    const n = ctx.args.uint('num_sessions', undefined, 1, 1000);
    const type = ctx.args.union('session_type', { sequential: false, concurrent: false }, 'sequential');
    const ids = box.db.transaction(() => Array.from({ length: n }, () => box.sessions.create(ctx.account!.ns, type.tag === 'concurrent')))();
    sendJson(ctx.res, { session_ids: ids });
  },
};

export const batchRoutes: Route[] = [finishBatchV2, finishBatchV1, finishBatchCheck, startBatch];
