// Content routes (content host): files/upload, upload_session/start, append_v2, finish, and
// files/download with Range, ETag and If-None-Match (reference §3.2–3.4). Runs in the local box child.
// Invariants: bodies stream through block files (never a whole file in memory); a commit happens only
// after every block of the file exists; Dropbox-API-Result is ASCII-escaped on every 200/206.

import { ApiError, routeError, type Union } from '../api-errors.ts';
import { requestBody, sendJson, streamBody, type Ctx } from '../context.ts';
import { contentHashOfBlocks } from '../content-hash.ts';
import { headerSafeJson, metadataJson, type EntryRow } from '../metadata.ts';
import { parsePath } from '../paths.ts';
import { MAX_REQUEST_BYTES, SessionError } from '../sessions.ts';
import { NsError } from '../store/namespace.ts';
import type { Box } from '../box.ts';
import { commitTarget, mapErrors, mapErrorsAsync, nested, optHash, parseCommit, underWriteLock, type ParsedCommit, type Route } from './common.ts';

const upload: Route = {
  name: 'files/upload',
  style: 'upload',
  auth: 'user',
  async handle(ctx, box) {
    const ns = ctx.account!.ns;
    const { path, opts } = parseCommit(ctx.route, ctx.args, ns);
    const expectHash = optHash(ctx.route, ctx.args);
    const writer = box.blocks.writer();
    try {
      await requestBody(ctx)((chunk, disposable) => {
        if (writer.bytes + chunk.length > MAX_REQUEST_BYTES) throw routeError({ '.tag': 'payload_too_large' });
        return writer.write(chunk, disposable);
      });
      const blocks = await writer.finish();
      const hash = contentHashOfBlocks(blocks.map((b) => b.hash));
      if (expectHash !== undefined && expectHash !== hash) throw routeError({ '.tag': 'content_hash_mismatch' });
      // the commit takes the namespace's write lock; the body was read before, as Dropbox does
      const row = await underWriteLock(ctx, box, () => {
        try {
          return box.ns.commitFile(ns, commitTarget(box, ns, path), opts, { blocks, size: writer.bytes, contentHash: hash });
        } catch (err) {
          if (!(err instanceof NsError)) throw err;
          // UploadWriteFailed is a struct: flattened next to the tag, with a session holding the data
          const sessionId = box.sessions.adopt(ns, blocks, writer.bytes);
          throw routeError({ '.tag': 'path', reason: err.union, upload_session_id: sessionId });
        }
      });
      sendJson(ctx.res, metadataJson(row, false));
    } finally {
      writer.release();
      if (!ctx.res.headersSent) await writer.abort();
    }
  },
};

const start: Route = {
  name: 'files/upload_session/start',
  style: 'upload',
  auth: 'user',
  async handle(ctx, box) {
    const ns = ctx.account!.ns;
    const close = ctx.args.bool('close', false);
    const type = ctx.args.union('session_type', { sequential: false, concurrent: false }, 'sequential');
    const expectHash = optHash(ctx.route, ctx.args);
    const concurrent = type.tag === 'concurrent';
    if (concurrent && close) throw routeError({ '.tag': 'concurrent_session_close_not_allowed' });
    const id = box.sessions.create(ns, concurrent);
    try {
      if (concurrent) {
        await requestBody(ctx)((chunk) => {
          if (chunk.length) throw routeError({ '.tag': 'concurrent_session_data_not_allowed' });
        });
      } else {
        await mapErrorsAsync(
          () => box.sessions.append(id, ns, 0, close, requestBody(ctx), expectHash),
          (_w, u) => u,
        );
      }
    } catch (err) {
      box.sessions.discard(id); // the id is never answered: nobody could continue or commit it
      throw err;
    }
    sendJson(ctx.res, { session_id: id });
  },
};

function cursorOf(ctx: Ctx): { sessionId: string; offset: number } {
  const c = ctx.args.struct('cursor')!;
  return { sessionId: c.str('session_id'), offset: c.uint('offset') };
}

const append: Route = {
  name: 'files/upload_session/append_v2',
  style: 'upload',
  auth: 'user',
  async handle(ctx, box) {
    const { sessionId, offset } = cursorOf(ctx);
    const close = ctx.args.bool('close', false);
    const expectHash = optHash(ctx.route, ctx.args);
    await mapErrorsAsync(
      () => box.sessions.append(sessionId, ctx.account!.ns, offset, close, requestBody(ctx), expectHash),
      (_w, u) => u,
    );
    sendJson(ctx.res, null);
  },
};

/** The UploadSessionFinishError for a failure of the finish step. */
export function finishError(err: unknown): Union | null {
  if (err instanceof SessionError) {
    const tag = err.union['.tag'];
    if (tag.startsWith('concurrent_session_') && tag !== 'concurrent_session_invalid_offset' && tag !== 'concurrent_session_invalid_data_size') {
      return err.union;
    }
    if (tag === 'content_hash_mismatch' || tag === 'payload_too_large') return err.union;
    return { '.tag': 'lookup_failed', lookup_failed: err.union };
  }
  if (err instanceof NsError) return err.where === 'top' ? err.union : { '.tag': 'path', path: err.union };
  return null;
}

const finish: Route = {
  name: 'files/upload_session/finish',
  style: 'upload',
  auth: 'user',
  async handle(ctx, box) {
    const ns = ctx.account!.ns;
    const { sessionId, offset } = cursorOf(ctx);
    const commit = parseCommit(ctx.route, ctx.args.struct('commit')!, ns);
    const expectHash = optHash(ctx.route, ctx.args);
    // The lock is taken before the body is read: a refused finish leaves its session as it was, so
    // the same call can be retried after retry_after.
    const row = await underWriteLock(ctx, box, () => finishSession(ctx, box, sessionId, offset, commit, expectHash));
    sendJson(ctx.res, metadataJson(row, false));
  },
};

async function finishSession(ctx: Ctx, box: Box, sessionId: string, offset: number, commit: ParsedCommit, expectHash: string | undefined): Promise<EntryRow> {
  const ns = ctx.account!.ns;
  try {
    let end = offset;
    const concurrent = box.sessions.isConcurrent(sessionId, ns);
    const body = requestBody(ctx);
    if (concurrent) {
      await body((chunk) => {
        if (chunk.length) throw new SessionError({ '.tag': 'concurrent_session_data_not_allowed' });
      });
    } else {
      const before = box.sessions.get(sessionId, ns);
      if (offset !== before.offset) throw new SessionError({ '.tag': 'incorrect_offset', correct_offset: before.offset });
      if (before.closed) {
        await body((chunk) => {
          if (chunk.length) throw new SessionError({ '.tag': 'closed' });
        });
      } else {
        await box.sessions.append(sessionId, ns, offset, false, body, expectHash);
      }
      end = box.sessions.get(sessionId, ns).offset;
    }
    const content = box.sessions.collect(sessionId, ns, end, false);
    return box.db.transaction(() => {
      const r = box.ns.commitFile(ns, commitTarget(box, ns, commit.path), commit.opts, content);
      box.sessions.drop(sessionId);
      return r;
    })();
  } catch (err) {
    const union = finishError(err);
    if (union) throw routeError(union);
    throw err;
  }
}

/** Parses a single "bytes=" range against `size`: null = whole file, 'unsatisfiable' = 416. */
function parseRange(header: string | undefined, size: number): { start: number; end: number } | null | 'unsatisfiable' {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null; // not a single byte range: ignore it, as HTTP allows
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size };
  }
  const start = Number(m[1]);
  const last = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || last < start) return 'unsatisfiable';
  return { start, end: last + 1 };
}

const download: Route = {
  name: 'files/download',
  style: 'download',
  auth: 'user',
  methods: ['GET', 'POST'],
  async handle(ctx, box) {
    const ns = ctx.account!.ns;
    const parsed = parsePath(ctx.route, 'path', ctx.args.str('path'), 'read', ns);
    const rev = ctx.args.optStr('rev');
    const row = mapErrors(() => box.ns.resolve(ns, parsed), nested('path'));
    if (row.tag !== 'file') throw routeError({ '.tag': 'path', path: { '.tag': 'not_file' } });
    if (rev !== undefined && rev !== row.rev) throw routeError({ '.tag': 'path', path: { '.tag': 'not_found' } });
    const etag = `W/"${row.rev}"`;
    const size = row.size ?? 0;
    const inm = ctx.req.headers['if-none-match'];
    if (inm && inm.split(',').some((t) => t.trim() === etag || t.trim() === `"${row.rev}"` || t.trim() === '*')) {
      ctx.res.writeHead(304, { ETag: etag });
      ctx.res.end();
      return;
    }
    const range = parseRange(ctx.req.headers.range, size);
    if (range === 'unsatisfiable') {
      throw new ApiError(416, 'text/plain; charset=utf-8', 'Requested range not satisfiable', { 'Content-Range': `bytes */${size}` });
    }
    // An injected bad answer (faults.ts): a range that starts elsewhere, a body short of or past the size promised.
    const bad = ctx.fault.badAnswer;
    const start = Math.min(size, (range?.start ?? 0) + (bad?.kind === 'range_shift' ? bad.bytes : 0));
    const end = bad?.kind === 'short_body' ? Math.max(start, (range?.end ?? size) - bad.bytes) : (range?.end ?? size);
    const extraBytes = bad?.kind === 'long_body' ? bad.bytes : 0;
    const headers: Record<string, string | number> = {
      'Content-Type': 'application/octet-stream',
      'Content-Length': end - start + extraBytes,
      'Dropbox-API-Result': headerSafeJson(metadataJson(row, false)),
      ETag: etag,
      'Accept-Ranges': 'bytes',
    };
    if (range) headers['Content-Range'] = `bytes ${start}-${range.end - 1}/${size}`;
    ctx.res.writeHead(range ? 206 : 200, headers);
    if (ctx.req.method === 'HEAD') {
      ctx.res.end();
      return;
    }
    await streamBody(ctx, box.blocks.reader(box.ns.blocksOf(row), start, end), end - start, (n) => box.faults.randomInt(n), extraBytes);
  },
};

export const contentRoutes: Route[] = [upload, start, append, finish, download];
