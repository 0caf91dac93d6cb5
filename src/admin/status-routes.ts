// The status page's HTTP routes on the admin listener: GET / (the page), /status.js, /status.css,
// /status.json (the data, README "Status page"), POST /login and /logout (the token cookie), POST
// /sessions/ID/disconnect (the one action, logged). Main thread. Invariants: every route here checks
// the Host first (DNS rebinding); data and actions need the access check (access.ts); POSTs pass the
// cross-site checks; every answer carries a CSP that allows no inline script and no other origin;
// /metrics and /healthz never reach this file; a refresh costs one snapshot at most every cacheMs.

import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { AdminAccess, CSRF_HEADER } from './access.ts';
import type { StatusModel } from './status-model.ts';

const PAGE_DIR = new URL('./page/', import.meta.url);
const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/status.js': { file: 'status.js', type: 'text/javascript; charset=utf-8' },
  '/status.css': { file: 'status.css', type: 'text/css; charset=utf-8' },
};
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};
const MAX_BODY_BYTES = 4096;
const DISCONNECT = /^\/sessions\/([A-Za-z0-9_-]{1,100})\/disconnect$/;

export interface DisconnectedSession {
  user: string | null;
  client: string;
}

export interface StatusRoutesOptions {
  access: AdminAccess;
  model: StatusModel;
  /** Ends a session (its transfer aborted, 421 sent, control connection closed); null when unknown. */
  disconnect: (sessionId: string) => DisconnectedSession | null;
  log: Logger;
  /** How long one snapshot answers every refresh (default 250 ms). */
  cacheMs?: number;
}

export class StatusRoutes {
  readonly #o: StatusRoutesOptions;
  readonly #assets = new Map<string, { body: Buffer; type: string }>();
  #cached: { atMs: number; body: (string | Buffer)[]; byteLength: number } | null = null;

  constructor(options: StatusRoutesOptions) {
    this.#o = options;
    for (const [path, { file, type }] of Object.entries(ASSETS)) this.#assets.set(path, { body: readFileSync(new URL(file, PAGE_DIR)), type });
  }

  /** Answers the request when it is one of ours; false lets the admin server go on (404). */
  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
    const asset = this.#assets.get(path);
    const disconnect = DISCONNECT.exec(path);
    const ours = asset !== undefined || disconnect !== null || path === '/status.json' || path === '/login' || path === '/logout';
    if (!ours) return false;
    const { access } = this.#o;
    if (!access.hostAllowed(req)) return send(res, 421, 'text/plain', 'Misdirected request: this Host is not a name of the status page (admin.hosts)\n'), true;
    const post = disconnect !== null || path === '/login' || path === '/logout';
    const allowed = post ? 'POST' : 'GET, HEAD';
    if (!allowed.split(', ').includes(req.method ?? '')) {
      res.writeHead(405, { ...SECURITY_HEADERS, allow: allowed }).end();
      return true;
    }
    if (asset && path !== '/') return send(res, 200, asset.type, asset.body, req.method === 'HEAD'), true;
    if (path === '/login') return (await this.#login(req, res)), true;
    const auth = access.authenticate(req);
    if (path === '/') return send(res, auth.ok ? 200 : auth.status, asset!.type, asset!.body, req.method === 'HEAD'), true;
    if (!auth.ok) return send(res, auth.status, 'application/json', JSON.stringify({ error: auth.reason }) + '\n', false, auth.status === 401 ? { 'www-authenticate': 'Bearer realm="dropftp"' } : {}), true;
    if (path === '/status.json') return this.#sendJson(res, req.method === 'HEAD'), true;
    const refusal = access.crossSiteRefusal(req, auth, true);
    if (refusal) return send(res, 403, 'application/json', JSON.stringify({ error: refusal }) + '\n'), true;
    if (path === '/logout') return send(res, 204, 'text/plain', '', false, { 'set-cookie': AdminAccess.logoutCookie }), true;
    const id = disconnect![1]!;
    const ended = this.#o.disconnect(id);
    this.#o.log.warn({ event: 'admin-disconnect', session: id, user: ended?.user ?? null, client: ended?.client ?? null, by: req.socket.remoteAddress, result: ended ? 'ok' : 'no such session' }, 'session disconnected from the status page');
    if (!ended) return send(res, 404, 'application/json', JSON.stringify({ error: 'no such session' }) + '\n'), true;
    this.#cached = null;
    return send(res, 200, 'application/json', JSON.stringify({ disconnected: id }) + '\n'), true;
  }

  /** The status JSON, written piece by piece (no copy into one buffer); one snapshot per cacheMs. */
  #sendJson(res: ServerResponse, headOnly: boolean): void {
    const now = Date.now();
    const cacheMs = this.#o.cacheMs ?? 250;
    if (!this.#cached || now - this.#cached.atMs >= cacheMs) {
      const body = this.#o.model.body({ csrf: this.#o.access.csrf, tokenRequired: this.#o.access.tokenRequired });
      this.#cached = { atMs: now, body, byteLength: body.reduce((n, piece) => n + Buffer.byteLength(piece), 0) };
    }
    const { body, byteLength } = this.#cached;
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'application/json', 'content-length': byteLength });
    if (headOnly) return void res.end();
    res.cork();
    for (const piece of body) res.write(piece);
    res.end();
  }

  async #login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { access, log } = this.#o;
    const refusal = access.crossSiteRefusal(req, { ok: true, via: 'open' }, false);
    if (refusal) return send(res, 403, 'application/json', JSON.stringify({ error: refusal }) + '\n');
    const body = await readBody(req);
    if (body === null) return send(res, 413, 'application/json', JSON.stringify({ error: 'body too large' }) + '\n');
    const token = new URLSearchParams(body).get('token') ?? '';
    const cookie = access.login(token);
    if (!cookie) {
      log.warn({ event: 'admin-login', result: 'failed', by: req.socket.remoteAddress }, 'status page login refused');
      return send(res, 401, 'application/json', JSON.stringify({ error: 'bad token' }) + '\n');
    }
    log.info({ event: 'admin-login', result: 'ok', by: req.socket.remoteAddress }, 'status page login');
    send(res, 204, 'text/plain', '', false, { 'set-cookie': cookie });
  }
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, headOnly = false, extra: Record<string, string> = {}): void {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(status, { ...SECURITY_HEADERS, ...extra, 'content-type': type, 'content-length': bytes.length });
  res.end(headOnly ? undefined : bytes);
}

/** The request body as text, or null past MAX_BODY_BYTES (the rest is not read). */
function readBody(req: IncomingMessage): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        req.resume();
        resolve(null);
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
}

export { CSRF_HEADER };
