// The local box's HTTP(S) server: one listener for the api, content and notify hosts, the OAuth
// token endpoint and the admin routes. Per request: request id, route lookup, auth, call-rate limit, faults,
// per-account concurrency cap, argument parsing, handler, error reply. Runs in the local box child.
// Invariants: no Node request/headers timeouts cut long appends or longpolls; any error becomes one
// well-formed reply (or a closed socket once a body is streaming); a bad request never crashes it.

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { AddressInfo } from 'node:net';
import { CALL_START_HEADER } from '../dropbox/call-stamp.ts';
import { ApiError, authError, badRequest, badRequestRaw, notFoundRoute, rateLimited, serverError } from './api-errors.ts';
import { Args, parseContentArg, parseRpcBody, readSmallBody } from './args.ts';
import { Box } from './box.ts';
import { CallRecord } from './call-stats.ts';
import type { Ctx } from './context.ts';
import type { FaultDecision } from './faults.ts';
import { accountRoutes } from './routes/account.ts';
import { adminRoutes } from './routes/admin.ts';
import { batchRoutes } from './routes/batch.ts';
import type { Route } from './routes/common.ts';
import { contentRoutes } from './routes/files-content.ts';
import { rpcRoutes } from './routes/files-rpc.ts';
import type { ServerConfig } from './types.ts';

const ROUTES = new Map<string, Route>(
  [...contentRoutes, ...rpcRoutes, ...batchRoutes, ...accountRoutes, ...adminRoutes].map((r) => [
    r.style === 'token' || r.style === 'admin' ? `/${r.name}` : `/2/${r.name}`,
    r,
  ]),
);

/** Accept queue length asked of the kernel (capped there by net.core.somaxconn). */
const LISTEN_BACKLOG = 4096;
const HEADERS_TIMEOUT_MS = 120_000;

const NO_FAULT: FaultDecision = { latencyMs: 0, reply: null, resetAfterBytes: null, corruptAt: null, corruptUploadAt: null, badAnswer: null };

export interface RunningServer {
  box: Box;
  server: Server;
  url: string;
  close(): Promise<void>;
}

export async function startServer(config: ServerConfig): Promise<RunningServer> {
  const box = await Box.open(config);
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    watchBodyIdle(req, res, config.bodyIdleTimeoutMs);
    const call = new CallRecord(box.calls);
    res.once('close', () => box.calls.record(call, res));
    handle(box, req, res, call).catch((err) => {
      if (err instanceof ApiError && err.limit !== null) call.noteLimit(err.limit);
      replyError(res, err);
    });
  };
  // Thousands of clients at once (issue 15): sockets keep Node's small default buffers (a download
  // writes one chunk at a time and waits for 'drain', so memory per connection stays bounded).
  const serverOptions = { noDelay: true, keepAlive: true, keepAliveInitialDelay: 30_000 };
  const server: Server = config.tls
    ? createHttps({ ...serverOptions, cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) }, handler)
    : createHttp(serverOptions, handler);
  // Long appends and longpolls must never be cut (reference §9): no request or idle timeouts. The
  // head of a request must arrive within HEADERS_TIMEOUT_MS (a client that never finishes its
  // headers holds a socket for ever otherwise); under a storm of connections that is still generous.
  server.requestTimeout = 0;
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.timeout = 0;
  server.keepAliveTimeout = 65_000;
  // No count limit (Node dropped every header past the limit without a word, Authorization
  // included, and the request failed for a reason it did not have): the head's size is the limit
  // (Node's 16 KiB), answered 431.
  server.maxHeadersCount = 0;
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable || err.code === 'ECONNRESET') socket.destroy();
    else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') socket.end(plainReply(408, 'Request Timeout', 'the request head did not arrive in time'));
    else if (err.code === 'HPE_HEADER_OVERFLOW') socket.end(plainReply(431, 'Request Header Fields Too Large', 'the request head is larger than 16 KiB'));
    else socket.end(plainReply(400, 'Bad Request', `malformed HTTP request (${err.code ?? 'parse error'})`));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // A deep accept queue: a storm of fresh connections must queue, not overflow into resets.
    server.listen({ port: config.port, host: config.host, backlog: LISTEN_BACKLOG }, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `${config.tls ? 'https' : 'http'}://${host}:${port}`;
  return {
    box,
    server,
    url,
    close: async () => {
      box.feed.closeAll();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 2000).unref();
      });
      box.close();
    },
  };
}

/** A whole reply written straight to a socket the HTTP parser gave up on: status, a text body, then close. */
function plainReply(status: number, reason: string, text: string): string {
  const body = `${text}\n`;
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

/**
 * A request body from which no byte arrives (and to which no byte is written) for `idleMs`
 * (config.bodyIdleTimeoutMs, 10 minutes) ends its connection: a client that sent headers and part of
 * a body, then went silent, held a socket and a partial-block file for ever. Far beyond any pause of
 * a live upload (the gateway gives up on an FTP client silent for 2 minutes by default), so long
 * appends are still never cut. Armed on a request that declares a body, until the body has arrived
 * or the exchange is over.
 */
function watchBodyIdle(req: IncomingMessage, res: ServerResponse, idleMs: number): void {
  const length = req.headers['content-length'];
  if (req.headers['transfer-encoding'] === undefined && (length === undefined || length === '0')) return;
  const socket = req.socket;
  // No 'timeout' listener anywhere: Node's HTTP server destroys the socket when it fires.
  socket.setTimeout(idleMs);
  const onEnd = (): void => {
    res.off('close', onClose);
    if (!socket.destroyed) socket.setTimeout(0);
  };
  // Once the exchange is over the socket's timeout is Node's again (its keep-alive wait, set as the
  // answer finished, must not be cleared here); a body not read by then closes the connection
  // (replyError) or is discarded by Node.
  const onClose = (): void => {
    req.off('end', onEnd);
  };
  req.once('end', onEnd);
  res.once('close', onClose);
}

function bearer(req: IncomingMessage, url: URL): string | null {
  const h = req.headers.authorization;
  if (h !== undefined) {
    const m = /^Bearer\s+(\S+)$/i.exec(h);
    return m ? m[1]! : '';
  }
  return url.searchParams.get('authorization')?.replace(/^Bearer\s+/i, '') ?? null;
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

async function handle(box: Box, req: IncomingMessage, res: ServerResponse, call: CallRecord): Promise<void> {
  res.setHeader('X-Dropbox-Request-Id', randomBytes(16).toString('hex'));
  const url = new URL(req.url ?? '/', 'http://localbox');
  const route = ROUTES.get(url.pathname);
  if (!route) throw notFoundRoute(url.pathname);
  if (!(route.methods ?? ['POST']).includes(req.method ?? '')) {
    throw badRequestRaw(`Unsupported method "${req.method}" for "${route.name}"; use ${(route.methods ?? ['POST']).join(' or ')}.`);
  }
  const ctx: Ctx = { req, res, url, route: route.name, args: new Args(route.name, {}), account: null, accessToken: null, fault: NO_FAULT, call };

  if (route.auth === 'admin') {
    const token = bearer(req, url);
    if (!token || !sameSecret(token, box.config.adminToken)) throw authError('invalid_access_token');
    return route.handle(ctx, box);
  }
  call.route = route.name;
  if (route.auth === 'user') {
    const token = bearer(req, url);
    if (token === null) {
      throw badRequest(route.name, 'Must provide HTTP header "Authorization" or URL parameter "authorization".');
    }
    const check = box.accounts.checkAccess(token);
    if (!check.ok) throw authError(check.tag);
    ctx.account = check.account;
    ctx.accessToken = token;
    call.account = check.account.name;
    // Dropbox's per-user call-rate limit: every authenticated call counts, refused ones too.
    const stamp = req.headers[CALL_START_HEADER];
    const waitSec = box.limits.admit(check.account.name, typeof stamp === 'string' ? Number(stamp) : undefined);
    if (waitSec > 0) throw rateLimited('too_many_requests', waitSec);
  }

  const accountName = ctx.account?.name ?? null;
  const bodyKind = route.style === 'download' ? 'download' : route.style === 'upload' ? 'upload' : 'none';
  ctx.fault = box.faults.decide(route.name, accountName, bodyKind, req.headers.range !== undefined);
  if (ctx.fault.corruptUploadAt === 'random') {
    // Within the declared body; a chunked body (no Content-Length): within its first chunk.
    const declared = Number(req.headers['content-length']);
    if (Number.isSafeInteger(declared) && declared > 0) ctx.fault.corruptUploadAt = box.faults.randomInt(declared);
    else if (declared === 0) ctx.fault.corruptUploadAt = null;
  }
  if (accountName !== null) {
    if (!box.faults.acquire(accountName)) throw rateLimited('too_many_requests', 1);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      box.faults.release(accountName);
    };
    res.once('finish', release);
    res.once('close', release);
  }
  if (ctx.fault.latencyMs > 0) await new Promise((r) => setTimeout(r, ctx.fault.latencyMs));
  const reply = ctx.fault.reply;
  if (reply) throw reply.kind === 'server_error' ? serverError(reply.status) : rateLimited(reply.kind, reply.retryAfterSec);
  if (ctx.fault.badAnswer?.kind === 'malformed') {
    throw new ApiError(200, 'application/json', '<html><body>502 Bad Gateway</body></html>', { 'Dropbox-API-Result': '{"name": "x", "size": ' });
  }
  if (ctx.fault.resetAfterBytes === 0 && bodyKind === 'none') {
    req.socket.destroy();
    return;
  }

  if (route.style === 'rpc') {
    const body = await readSmallBody(req, route.name);
    ctx.args = new Args(route.name, parseRpcBody(route.name, body, req.headers['content-type'], route.voidArg ?? false));
  } else if (route.style === 'upload' || route.style === 'download') {
    if (route.style === 'upload') {
      const ct = (req.headers['content-type'] ?? '').toLowerCase();
      if (ct && !ct.startsWith('application/octet-stream') && !ct.startsWith('text/plain; charset=dropbox-cors-hack')) {
        throw badRequest(route.name, `Bad HTTP "Content-Type" header: "${ct}".  Expecting one of "application/octet-stream", "text/plain; charset=dropbox-cors-hack".`);
      }
    }
    ctx.args = new Args(route.name, parseContentArg(route.name, req, url));
  }
  await route.handle(ctx, box);
}

function replyError(res: ServerResponse, err: unknown): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  if (!(err instanceof ApiError)) {
    if (!isClientGone(err)) process.stderr.write(`localbox: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    err = new ApiError(500, 'text/plain; charset=utf-8', 'Internal server error');
  }
  const e = err as ApiError;
  // A body read in part and then given up (over the RPC limit, or an upload that failed midway):
  // Node discards the rest of a body only if nothing read it, so this connection cannot carry
  // another request; it closes after this answer instead of waiting for one that a keep-alive
  // client would send behind bytes nobody reads. A body never touched is discarded by Node and the
  // connection kept (a client still sending it then reads this answer).
  const req = res.req as IncomingMessage | undefined;
  const unread = req !== undefined && !req.complete && (req.readableDidRead || req.destroyed);
  res.writeHead(e.status, { 'Content-Type': e.contentType, 'Content-Length': Buffer.byteLength(e.body), ...e.headers, ...(unread ? { Connection: 'close' } : {}) });
  res.end(e.body);
}

function isClientGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || (err as Error)?.message === 'aborted' || (err as Error)?.message === 'injected reset';
}
