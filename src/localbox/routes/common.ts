// Shared route plumbing: the route table type, CommitInfo parsing, and the mapping of namespace and
// session failures into each route's error union (reference §2.2). Runs in the local box child.
// Invariant: a route's 409 body always has the shape its stone error type prescribes.

import { badRequest, rateLimited, routeError, type ApiError, type Union } from '../api-errors.ts';
import type { Args } from '../args.ts';
import type { Box } from '../box.ts';
import type { Ctx } from '../context.ts';
import { TIMESTAMP_RE } from '../metadata.ts';
import { parsePath, type ParsedPath } from '../paths.ts';
import { SessionError } from '../sessions.ts';
import { NsError, type CommitOptions } from '../store/namespace.ts';

export interface Route {
  name: string; // e.g. "files/download"
  style: 'rpc' | 'upload' | 'download' | 'token' | 'admin';
  auth: 'user' | 'none' | 'admin';
  voidArg?: boolean;
  methods?: string[]; // default ['POST']
  handle(ctx: Ctx, box: Box): Promise<void>;
}

/**
 * Runs the state-changing part of a call under its namespace's write lock (reference §8): refused
 * with 429 too_many_write_operations (retry_after 1) while another call holds it; `fn`'s result is
 * returned once the hold time has passed. With the lock off, just runs `fn`.
 */
export async function underWriteLock<T>(ctx: Ctx, box: Box, fn: () => T | Promise<T>): Promise<T> {
  const hold = box.limits.tryLock(ctx.account!.ns);
  if (!hold) throw rateLimited('too_many_write_operations', 1);
  try {
    const value = await fn();
    await hold.finish();
    return value;
  } finally {
    hold.release();
  }
}

/** Runs `fn`, turning NsError/SessionError into the route's 409 via `map`. */
export function mapErrors<T>(fn: () => T, map: (where: 'lookup' | 'write' | 'top' | 'session', union: Union) => Union): T {
  try {
    return fn();
  } catch (err) {
    throw convert(err, map);
  }
}

export async function mapErrorsAsync<T>(
  fn: () => Promise<T>,
  map: (where: 'lookup' | 'write' | 'top' | 'session', union: Union) => Union,
): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw convert(err, map);
  }
}

function convert(err: unknown, map: (where: 'lookup' | 'write' | 'top' | 'session', union: Union) => Union): unknown {
  if (err instanceof NsError) return routeError(map(err.where, err.union));
  if (err instanceof SessionError) return routeError(map('session', err.union));
  return err as Error | ApiError;
}

export const nested = (member: string) => (_w: unknown, union: Union): Union => ({ '.tag': member, [member]: union });

/** A lookup failure in a write position (e.g. an unknown id as the target) is a malformed path. */
export function asWriteError(where: string, union: Union): Union {
  return where === 'lookup' ? { '.tag': 'malformed_path' } : union;
}

export interface ParsedCommit {
  path: ParsedPath;
  opts: CommitOptions;
}

/** CommitInfo (reference §3.1). Path resolution failures throw NsError('lookup'). */
export function parseCommit(route: string, a: Args, ns: number): ParsedCommit {
  const parsed = parsePath(route, `${a.prefix}path`, a.str('path'), 'writeOrId', ns);
  const mode = a.union('mode', { add: false, overwrite: false, update: true }, 'add');
  let updateRev: string | undefined;
  if (mode.tag === 'update') {
    if (typeof mode.value !== 'string' || !/^[0-9a-f]{9,}$/.test(mode.value)) {
      throw badRequest(route, `request body: ${a.prefix}mode: invalid rev`);
    }
    updateRev = mode.value;
  }
  const clientModified = a.optStr('client_modified');
  if (clientModified !== undefined && !TIMESTAMP_RE.test(clientModified)) {
    throw badRequest(route, `request body: ${a.prefix}client_modified: time data '${clientModified}' does not match format '%Y-%m-%dT%H:%M:%SZ'`);
  }
  a.bool('mute', false);
  const opts: CommitOptions = {
    mode: mode.tag as CommitOptions['mode'],
    autorename: a.bool('autorename', false),
    strictConflict: a.bool('strict_conflict', false),
  };
  if (updateRev !== undefined) opts.updateRev = updateRev;
  if (clientModified !== undefined) opts.clientModified = clientModified;
  return { path: parsed, opts };
}

/** The display path a commit writes to; an unresolvable id or malformed path is NsError('write', malformed_path). */
export function commitTarget(box: Box, ns: number, path: ParsedPath): string {
  try {
    const display = box.ns.displayOf(ns, path);
    if (display === '') throw new NsError('write', { '.tag': 'malformed_path' });
    return display;
  } catch (err) {
    if (err instanceof NsError && err.where === 'lookup') throw new NsError('write', { '.tag': 'malformed_path' });
    throw err;
  }
}

export function optHash(route: string, a: Args): string | undefined {
  const h = a.optStr('content_hash');
  if (h !== undefined && !/^[0-9a-f]{64}$/.test(h)) throw badRequest(route, `request body: ${a.prefix}content_hash: invalid content hash`);
  return h;
}
