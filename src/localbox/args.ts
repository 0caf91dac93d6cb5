// Reading route arguments: Dropbox-API-Arg header (latin1 → UTF-8 re-decode, escaped or raw UTF-8),
// the `arg` URL parameter, RPC JSON bodies; and typed field readers that turn bad input into 400s.
// Runs in the local box child. Invariant: unknown fields are ignored; wrong types never throw
// anything but a 400 ApiError (reference §1.2, §1.3, §12 item 2).

import type { IncomingMessage } from 'node:http';
import { badRequest } from './api-errors.ts';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Obj = Record<string, unknown>;

const MAX_RPC_BODY_BYTES = 8 * 1024 * 1024;

/** Reads the whole (small) RPC body. Rejects bodies over 8 MiB with a 400. */
export async function readSmallBody(req: IncomingMessage, route: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > MAX_RPC_BODY_BYTES) throw badRequest(route, 'request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Parses an RPC body. Void routes accept an empty body, `null`, with or without Content-Type. */
export function parseRpcBody(route: string, body: Buffer, contentType: string | undefined, voidArg: boolean): Obj {
  const text = body.toString('utf8').trim();
  if (voidArg) {
    if (text === '' || text === 'null') return {};
  }
  const ct = (contentType ?? '').toLowerCase();
  if (!ct.startsWith('application/json') && !ct.startsWith('text/plain; charset=dropbox-cors-hack')) {
    throw badRequest(
      route,
      `Bad HTTP "Content-Type" header: "${contentType ?? ''}".  Expecting one of "application/json", "application/json; charset=utf-8", "text/plain; charset=dropbox-cors-hack".`,
    );
  }
  return parseJsonObject(route, text, 'request body');
}

/** Parses the content-route argument from the header or the `arg` URL parameter. */
export function parseContentArg(route: string, req: IncomingMessage, url: URL): Obj {
  const header = req.headers['dropbox-api-arg'];
  if (typeof header === 'string') {
    // Node decodes header bytes as latin1; raw UTF-8 senders (Go SDK) need the bytes back (reference §1.3).
    const text = Buffer.from(header, 'latin1').toString('utf8');
    if (text.includes('\uFFFD')) {
      throw badRequest(route, 'HTTP header "Dropbox-API-Arg": could not decode input as JSON');
    }
    return parseJsonObject(route, text, 'HTTP header "Dropbox-API-Arg"');
  }
  const param = url.searchParams.get('arg');
  if (param !== null) return parseJsonObject(route, param, 'URL parameter "arg"');
  throw badRequest(route, 'Must provide HTTP header "Dropbox-API-Arg" or URL parameter "arg".');
}

function parseJsonObject(route: string, text: string, where: string): Obj {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw badRequest(route, `${where}: could not decode input as JSON`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw badRequest(route, `${where}: expected object, got ${describe(value)}`);
  }
  return value as Obj;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'list';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'float';
  return typeof v;
}

/** Typed readers over one argument object; errors name the field path like Dropbox does. */
export class Args {
  constructor(
    readonly route: string,
    readonly obj: Obj,
    readonly prefix = '',
  ) {}

  private fail(field: string, msg: string): never {
    throw badRequest(this.route, `request body: ${this.prefix}${field}: ${msg}`);
  }

  has(field: string): boolean {
    return this.obj[field] !== undefined && this.obj[field] !== null;
  }

  str(field: string, def?: string): string {
    const v = this.obj[field];
    if (v === undefined || v === null) {
      if (def !== undefined) return def;
      this.fail(field, 'missing required field');
    }
    if (typeof v !== 'string') this.fail(field, `expected string, got ${describe(v)}`);
    return v;
  }

  optStr(field: string): string | undefined {
    return this.has(field) ? this.str(field) : undefined;
  }

  bool(field: string, def: boolean): boolean {
    const v = this.obj[field];
    if (v === undefined || v === null) return def;
    if (typeof v !== 'boolean') this.fail(field, `expected boolean, got ${describe(v)}`);
    return v;
  }

  /** A non-negative integer up to 2^53; `max` bounds it further. */
  uint(field: string, def?: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.obj[field];
    if (v === undefined || v === null) {
      if (def !== undefined) return def;
      this.fail(field, 'missing required field');
    }
    if (typeof v !== 'number' || !Number.isInteger(v)) this.fail(field, `expected integer, got ${describe(v)}`);
    if (v < min || v > max) this.fail(field, `${v} is not within range [${min}, ${max}]`);
    return v;
  }

  struct(field: string, required = true): Args | undefined {
    const v = this.obj[field];
    if (v === undefined || v === null) {
      if (required) this.fail(field, 'missing required field');
      return undefined;
    }
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(field, `expected object, got ${describe(v)}`);
    return new Args(this.route, v as Obj, `${this.prefix}${field}.`);
  }

  list(field: string, maxItems: number): Args[] {
    const v = this.obj[field];
    if (!Array.isArray(v)) this.fail(field, v === undefined ? 'missing required field' : `expected list, got ${describe(v)}`);
    if (v.length > maxItems) this.fail(field, `list has more than ${maxItems} items`);
    return v.map((item, i) => {
      if (item === null || typeof item !== 'object' || Array.isArray(item)) this.fail(`${field}[${i}]`, 'expected object');
      return new Args(this.route, item as Obj, `${this.prefix}${field}[${i}].`);
    });
  }

  /**
   * A union in compact ("add") or tagged ({".tag":"update","update":"rev"}) form. `members` maps each
   * allowed tag to whether it carries a value; the compact form is only allowed for void members.
   */
  union(field: string, members: Record<string, boolean>, def?: string): { tag: string; value: unknown } {
    const v = this.obj[field];
    if (v === undefined || v === null) {
      if (def !== undefined) return { tag: def, value: undefined };
      this.fail(field, 'missing required field');
    }
    let tag: unknown;
    let value: unknown;
    if (typeof v === 'string') tag = v;
    else if (typeof v === 'object' && !Array.isArray(v)) {
      tag = (v as Obj)['.tag'];
      value = (v as Obj)[tag as string];
    } else this.fail(field, `expected union, got ${describe(v)}`);
    // Own keys only: `in` let inherited names (constructor, toString …) through as tags.
    if (typeof tag !== 'string' || !Object.hasOwn(members, tag)) this.fail(field, `unknown tag '${String(tag)}'`);
    if (members[tag] && (typeof v === 'string' || value === undefined)) this.fail(field, `tag '${tag}' requires a value`);
    return { tag, value };
  }
}
