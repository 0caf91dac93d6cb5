// RPC file routes (api/notify hosts): get_metadata, list_folder (+continue, get_latest_cursor,
// longpoll), delete_v2, move_v2, copy_v2, create_folder_v2 (reference §3.5–3.7). Runs in the local
// box child. Invariant: every failure is a 400 (bad input) or the route's own 409 union.

import { badRequest, routeError } from '../api-errors.ts';
import type { Box } from '../box.ts';
import { MAX_PAGE, decodeCursor } from '../changelog.ts';
import { sendJson, type Ctx } from '../context.ts';
import { metadataJson } from '../metadata.ts';
import { lower, parsePath } from '../paths.ts';
import { NsError } from '../store/namespace.ts';
import { asWriteError, mapErrors, nested, underWriteLock, type Route } from './common.ts';

const getMetadata: Route = {
  name: 'files/get_metadata',
  style: 'rpc',
  auth: 'user',
  async handle(ctx, box) {
    const ns = ctx.account!.ns;
    const parsed = parsePath(ctx.route, 'path', ctx.args.str('path'), 'read', ns);
    for (const f of ['include_media_info', 'include_has_explicit_shared_members'] as const) ctx.args.bool(f, false);
    const includeDeleted = ctx.args.bool('include_deleted', false);
    try {
      sendJson(ctx.res, metadataJson(box.ns.resolve(ns, parsed)));
    } catch (err) {
      // include_deleted: a path whose last change was a deletion answers DeletedMetadata
      if (err instanceof NsError && includeDeleted && parsed.kind === 'path') {
        const last = box.db
          .prepare('SELECT meta FROM changes WHERE ns = ? AND path_lower = ? ORDER BY seq DESC LIMIT 1')
          .get(ns, lower(parsed.display)) as { meta: string } | undefined;
        if (last && JSON.parse(last.meta)['.tag'] === 'deleted') return sendJson(ctx.res, JSON.parse(last.meta));
      }
      if (err instanceof NsError) throw routeError({ '.tag': 'path', path: err.union });
      throw err;
    }
  },
};

/** Resolves the folder of a list_folder-style argument to its path_lower ("" = root). */
function listedFolder(ctx: Ctx, box: Box): string {
  const ns = ctx.account!.ns;
  const parsed = parsePath(ctx.route, 'path', ctx.args.str('path'), 'listing', ns);
  return mapErrors(() => {
    const display = box.ns.displayOf(ns, parsed);
    if (display === '') return '';
    const row = box.ns.resolve(ns, parsed);
    if (row.tag !== 'folder') throw new NsError('lookup', { '.tag': 'not_folder' });
    return row.path_lower;
  }, nested('path'));
}

function listArgs(ctx: Ctx): { recursive: boolean; includeDeleted: boolean; limit: number } {
  for (const f of ['include_media_info', 'include_has_explicit_shared_members', 'include_mounted_folders', 'include_non_downloadable_files']) {
    ctx.args.bool(f, true);
  }
  return {
    recursive: ctx.args.bool('recursive', false),
    includeDeleted: ctx.args.bool('include_deleted', false),
    limit: ctx.args.uint('limit', MAX_PAGE, 1, MAX_PAGE),
  };
}

const listFolder: Route = {
  name: 'files/list_folder',
  style: 'rpc',
  auth: 'user',
  async handle(ctx, box) {
    const { recursive, includeDeleted, limit } = listArgs(ctx);
    const p = listedFolder(ctx, box);
    sendJson(ctx.res, box.feed.start(ctx.account!.ns, p, recursive, includeDeleted, limit));
  },
};

const listContinue: Route = {
  name: 'files/list_folder/continue',
  style: 'rpc',
  auth: 'user',
  async handle(ctx, box) {
    const c = decodeCursor(ctx.route, ctx.args.str('cursor'));
    // Another account's cursor, or a position the log has not reached (a cursor not ours): reset.
    if (c.ns !== ctx.account!.ns || box.feed.isAhead(c)) throw routeError({ '.tag': 'reset' });
    if (c.p !== '' && !box.ns.get(c.ns, c.p)) throw routeError({ '.tag': 'path', path: { '.tag': 'not_found' } });
    sendJson(ctx.res, box.feed.next(c));
  },
};

const latestCursor: Route = {
  name: 'files/list_folder/get_latest_cursor',
  style: 'rpc',
  auth: 'user',
  async handle(ctx, box) {
    const { recursive, includeDeleted } = listArgs(ctx);
    const p = listedFolder(ctx, box);
    sendJson(ctx.res, { cursor: box.feed.latestCursor(ctx.account!.ns, p, recursive, includeDeleted) });
  },
};

const longpoll: Route = {
  name: 'files/list_folder/longpoll',
  style: 'rpc',
  auth: 'none',
  async handle(ctx, box) {
    const c = decodeCursor(ctx.route, ctx.args.str('cursor'));
    const timeoutSec = ctx.args.uint('timeout', 30, 30, 480);
    if (!box.accounts.byNs(c.ns) || box.feed.isAhead(c)) throw routeError({ '.tag': 'reset' });
    const { promise, cancel } = box.feed.wait(c, timeoutSec * 1000);
    const onClose = (): void => cancel();
    ctx.res.on('close', onClose);
    const changes = await promise;
    ctx.res.off('close', onClose);
    if (!ctx.res.destroyed) sendJson(ctx.res, { changes });
  },
};

const deleteV2: Route = {
  name: 'files/delete_v2',
  style: 'rpc',
  auth: 'user',
  async handle(ctx, box) {
    const ns = ctx.account!.ns;
    const parsed = parsePath(ctx.route, 'path', ctx.args.str('path'), 'writeOrId', ns);
    const parentRev = ctx.args.optStr('parent_rev');
    const row = mapErrors(() => box.ns.resolve(ns, parsed), nested('path_lookup'));
    if (parentRev !== undefined && row.rev !== parentRev) throw routeError({ '.tag': 'path_write', path_write: { '.tag': 'conflict', conflict: { '.tag': 'file' } } });
    const gone = await underWriteLock(ctx, box, () => box.ns.delete(ns, row));
    sendJson(ctx.res, { metadata: metadataJson(gone) });
  },
};

function relocate(copy: boolean): Route {
  return {
    name: copy ? 'files/copy_v2' : 'files/move_v2',
    style: 'rpc',
    auth: 'user',
    async handle(ctx, box) {
      const ns = ctx.account!.ns;
      const from = parsePath(ctx.route, 'from_path', ctx.args.str('from_path'), 'writeOrId', ns);
      const to = parsePath(ctx.route, 'to_path', ctx.args.str('to_path'), 'writeOrId', ns);
      const autorename = ctx.args.bool('autorename', false);
      ctx.args.bool('allow_shared_folder', false);
      ctx.args.bool('allow_ownership_transfer', false);
      const row = mapErrors(() => box.ns.resolve(ns, from), nested('from_lookup'));
      const toDisplay = mapErrors(
        () => box.ns.displayOf(ns, to),
        (w, u) => ({ '.tag': 'to', to: asWriteError(w, u) }),
      );
      if (toDisplay === '') throw routeError({ '.tag': 'to', to: { '.tag': 'malformed_path' } });
      const moved = await underWriteLock(ctx, box, () =>
        mapErrors(
          () => box.ns.relocate(ns, row, toDisplay, autorename, copy),
          (w, u) => (w === 'top' ? u : { '.tag': 'to', to: u }),
        ),
      );
      sendJson(ctx.res, { metadata: metadataJson(moved) });
    },
  };
}

const createFolder: Route = {
  name: 'files/create_folder_v2',
  style: 'rpc',
  auth: 'user',
  async handle(ctx, box) {
    const ns = ctx.account!.ns;
    const parsed = parsePath(ctx.route, 'path', ctx.args.str('path'), 'write', ns);
    const autorename = ctx.args.bool('autorename', false);
    const display = mapErrors(() => box.ns.displayOf(ns, parsed), (w, u) => ({ '.tag': 'path', path: asWriteError(w, u) }));
    if (display === '') throw badRequest(ctx.route, 'request body: path: The root folder is unsupported.');
    const row = await underWriteLock(ctx, box, () => mapErrors(() => box.ns.createFolder(ns, display, autorename), nested('path')));
    sendJson(ctx.res, { metadata: metadataJson(row, false) });
  },
};

export const rpcRoutes: Route[] = [
  getMetadata,
  listFolder,
  listContinue,
  latestCursor,
  longpoll,
  deleteV2,
  relocate(false),
  relocate(true),
  createFolder,
];
