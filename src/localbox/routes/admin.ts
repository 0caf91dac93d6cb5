// Admin routes on the same port, guarded by `Authorization: Bearer <adminToken>`: accounts, fault
// spec and counts, Dropbox's limits (GET/POST /admin/limits), call counters (GET /admin/calls, POST /admin/calls/reset), authorization codes, token expiry, garbage collection and storage stats.
// Runs in the local box child. Invariant: never reachable with a user token.

import { badRequestRaw } from '../api-errors.ts';
import { readSmallBody } from '../args.ts';
import type { Box } from '../box.ts';
import { sendJson, type Ctx } from '../context.ts';
import type { FaultSpec } from '../types.ts';
import type { Route } from './common.ts';

async function jsonBody(ctx: Ctx): Promise<Record<string, unknown>> {
  const body = await readSmallBody(ctx.req, ctx.route);
  try {
    const v = JSON.parse(body.toString('utf8') || '{}') as unknown;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch {
    throw badRequestRaw('admin: body must be a JSON object');
  }
}

function accountName(box: Box, v: unknown, mustExist = true): string {
  if (typeof v !== 'string' || !/^[A-Za-z0-9_.@-]{1,64}$/.test(v)) throw badRequestRaw('admin: "account"/"name" must be 1-64 of [A-Za-z0-9_.@-]');
  if (mustExist && !box.accounts.byName(v)) throw badRequestRaw(`admin: no account "${v}"`);
  return v;
}

function admin(name: string, methods: string[], handle: (ctx: Ctx, box: Box) => Promise<void>): Route {
  return { name, style: 'admin', auth: 'admin', methods, handle };
}

export const adminRoutes: Route[] = [
  admin('admin/accounts', ['POST'], async (ctx, box) => {
    const body = await jsonBody(ctx);
    sendJson(ctx.res, box.accounts.create(accountName(box, body.name, false)));
  }),
  admin('admin/faults', ['GET', 'POST'], async (ctx, box) => {
    if (ctx.req.method === 'POST') box.faults.set((await jsonBody(ctx)) as unknown as FaultSpec);
    sendJson(ctx.res, { spec: box.faults.current, counts: box.faults.counts });
  }),
  admin('admin/oauth/code', ['POST'], async (ctx, box) => {
    const body = await jsonBody(ctx);
    const str = (k: string): string | null => (typeof body[k] === 'string' ? (body[k] as string) : null);
    const code = box.accounts.mintCode(accountName(box, body.account), str('code_challenge'), str('code_challenge_method'), str('redirect_uri'));
    sendJson(ctx.res, { code });
  }),
  admin('admin/expire-tokens', ['POST'], async (ctx, box) => {
    const body = await jsonBody(ctx);
    sendJson(ctx.res, { expired: box.accounts.expireTokens(accountName(box, body.account)) });
  }),
  admin('admin/limits', ['GET', 'POST'], async (ctx, box) => {
    if (ctx.req.method === 'POST') box.limits.update(await jsonBody(ctx));
    sendJson(ctx.res, box.limits.current);
  }),
  admin('admin/calls', ['GET'], async (ctx, box) => {
    sendJson(ctx.res, box.calls.snapshot());
  }),
  // Benchmarks: Retry-After windows announced and calls that arrived inside one (zeroed with the calls).
  admin('admin/calls/retry-after-windows', ['GET'], async (ctx, box) => {
    sendJson(ctx.res, box.limits.retryAfterWindows());
  }),
  admin('admin/calls/reset', ['POST'], async (ctx, box) => {
    box.calls.reset();
    box.limits.resetRetryAfterWindows();
    sendJson(ctx.res, box.calls.snapshot());
  }),
  admin('admin/gc', ['POST'], async (ctx, box) => {
    sendJson(ctx.res, await box.gc());
  }),
  admin('admin/stats', ['GET'], async (ctx, box) => {
    const count = (sql: string): number => (box.db.prepare(sql).get() as { n: number }).n;
    sendJson(ctx.res, {
      storedBlockBytes: await box.blocks.storedBytes(),
      files: count("SELECT COUNT(*) AS n FROM entries WHERE tag = 'file'"),
      folders: count("SELECT COUNT(*) AS n FROM entries WHERE tag = 'folder'"),
      sessions: count('SELECT COUNT(*) AS n FROM sessions'),
      referencedBlocks: box.referencedHashes().size,
      rssBytes: process.memoryUsage().rss,
    });
  }),
];
