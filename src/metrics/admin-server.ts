// The admin listener (off unless configured): GET /metrics (Prometheus text format 0.0.4, the
// content type Prometheus negotiates for plain text) and GET /healthz
// (200 when the FTP listener is up and every storage backend answers, else 503, with a JSON body
// saying which part failed). Main thread. Invariants: separate from the FTP port; serves nothing
// else but `routes` (the status page, which never sees /metrics or /healthz) (404); health probes of the backend are cached for `healthCacheMs` so a busy prober cannot
// turn into Dropbox traffic; close() stops it and drops idle keep-alive sockets.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DropftpError } from '../errors.ts';
import { contentType } from './registry.ts';

export interface HealthReport {
  ok: boolean;
  /** Part name → 'ok' or what is wrong. */
  checks: Record<string, string>;
}

export interface AdminServerOptions {
  host: string;
  port: number;
  /** The exposition text (prom-client's registry renders asynchronously). */
  metrics: () => string | Promise<string>;
  health: () => Promise<HealthReport>;
  /** Default 5 s. */
  healthCacheMs?: number;
  /** Further routes (src/admin/status-routes.ts): true when the request was answered. */
  routes?: (req: IncomingMessage, res: ServerResponse, path: string) => boolean | Promise<boolean>;
}

export class AdminServer {
  readonly #server: Server;
  readonly #options: AdminServerOptions;
  #cached: { atMs: number; report: Promise<HealthReport> } | null = null;

  constructor(options: AdminServerOptions) {
    this.#options = options;
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500).end();
        else res.destroy();
      });
    });
    this.#server.keepAliveTimeout = 5_000;
  }

  async listen(): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(new DropftpError('DROPFTP_ERR_CONFIG', `admin listener ${this.#options.host}:${this.#options.port}: ${err.message}`, { cause: err }));
      this.#server.once('error', onError);
      this.#server.listen(this.#options.port, this.#options.host, () => {
        this.#server.off('error', onError);
        resolve();
      });
    });
    return this.#server.address() as AddressInfo;
  }

  get address(): AddressInfo | null {
    return this.#server.address() as AddressInfo | null;
  }

  async close(): Promise<void> {
    if (!this.#server.listening) return;
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeIdleConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path !== '/metrics' && path !== '/healthz' && this.#options.routes && (await this.#options.routes(req, res, path))) return;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      const body = await this.#options.metrics();
      res.writeHead(200, { 'content-type': contentType(), 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    if (path === '/healthz') {
      const report = await this.#health();
      const body = JSON.stringify({ status: report.ok ? 'ok' : 'unavailable', checks: report.checks }) + '\n';
      res.writeHead(report.ok ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
  }

  #health(): Promise<HealthReport> {
    const now = Date.now();
    const ttl = this.#options.healthCacheMs ?? 5_000;
    if (this.#cached && now - this.#cached.atMs < ttl) return this.#cached.report;
    const report = this.#options.health().catch((err: unknown): HealthReport => ({ ok: false, checks: { health: (err as Error).message } }));
    this.#cached = { atMs: now, report };
    return report;
  }
}
