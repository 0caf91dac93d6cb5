// Who may see the status page and act on it: the Host check against DNS rebinding, the token
// (`Authorization: Bearer` or the HttpOnly cookie the page's login sets), and the cross-site checks
// of state-changing requests (Origin, Sec-Fetch-Site, a per-process CSRF value in a custom header).
// Main thread. Invariants: the token comes from DROPFTP_ADMIN_TOKEN or admin.tokenFile, never argv;
// every comparison of a secret is constant-time (over SHA-256 digests, so lengths leak nothing);
// the cookie holds an HMAC of the token, never the token; a listener on a non-loopback address
// without a token serves no status page at all.

import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { ADMIN_TOKEN_ENV } from '../config/schema.ts';
import { DropftpError } from '../errors.ts';

export { ADMIN_TOKEN_ENV };

export const COOKIE_NAME = 'dropftp_admin';
export const CSRF_HEADER = 'x-dropftp-csrf';
const MIN_TOKEN_CHARS = 16;

export interface AccessOptions {
  /** The token itself (in-process callers and tests); else DROPFTP_ADMIN_TOKEN, else tokenFile. */
  token?: string | null;
  tokenFile?: string | null;
  /** Extra Host names accepted (besides the listener's address, and loopback names on loopback). */
  hosts?: readonly string[];
  /** Token even on a loopback listener. */
  requireToken?: boolean;
  env?: NodeJS.ProcessEnv;
}

export function isLoopback(address: string): boolean {
  const a = address.toLowerCase().replace(/^\[|\]$/g, '');
  return a === '::1' || a === 'localhost' || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(a);
}

/** The token from the environment or the file; null when neither is set. Throws DROPFTP_ERR_CONFIG naming the source. */
export function loadToken(options: AccessOptions): string | null {
  const check = (value: string, source: string): string => {
    const token = value.trim();
    if (token.length < MIN_TOKEN_CHARS || !/^[\x21-\x7e]+$/.test(token)) {
      throw new DropftpError('DROPFTP_ERR_CONFIG', `${source}: the admin token must be at least ${MIN_TOKEN_CHARS} printable characters without spaces (try: openssl rand -hex 24)`);
    }
    return token;
  };
  if (options.token) return check(options.token, 'admin token');
  const fromEnv = (options.env ?? process.env)[ADMIN_TOKEN_ENV];
  if (fromEnv) return check(fromEnv, ADMIN_TOKEN_ENV);
  if (!options.tokenFile) return null;
  let text: string;
  try {
    if ((statSync(options.tokenFile).mode & 0o077) !== 0) {
      throw new DropftpError('DROPFTP_ERR_CONFIG', `admin.tokenFile: ${options.tokenFile} is readable by group or others (chmod 600 it)`);
    }
    text = readFileSync(options.tokenFile, 'utf8');
  } catch (err) {
    if (err instanceof DropftpError) throw err;
    throw new DropftpError('DROPFTP_ERR_CONFIG', `admin.tokenFile: ${(err as Error).message}`);
  }
  return check(text, `admin.tokenFile ${options.tokenFile}`);
}

const digest = (text: string): Buffer => createHash('sha256').update(text).digest();
const sameSecret = (given: string, expected: Buffer): boolean => timingSafeEqual(digest(given), expected);

/** Host header → lower-case host name without port ('[::1]:80' → '::1'); null when malformed. */
export function hostName(header: string | undefined): string | null {
  if (!header) return null;
  const h = header.trim().toLowerCase();
  const m = /^\[([0-9a-f:.]+)\](?::\d{1,5})?$/.exec(h) ?? /^([a-z0-9.-]+)(?::\d{1,5})?$/.exec(h);
  return m ? m[1]! : null;
}

export type AuthResult = { ok: true; via: 'open' | 'bearer' | 'cookie' } | { ok: false; status: 401 | 503; reason: string };

export class AdminAccess {
  readonly tokenRequired: boolean;
  readonly #token: string | null;
  readonly #tokenDigest: Buffer | null;
  readonly #cookieDigest: Buffer | null;
  readonly #cookieValue: string | null;
  readonly #hosts: Set<string>;
  /** Sent to the page in /status.json; required in CSRF_HEADER by cookie or open (no-token) POSTs. */
  readonly csrf = randomBytes(18).toString('base64url');

  /** `listenAddress`: the address the listener is bound to (after listen). */
  constructor(listenAddress: string, options: AccessOptions) {
    this.#token = loadToken(options);
    this.tokenRequired = options.requireToken === true || !isLoopback(listenAddress);
    if (options.requireToken && !this.#token) {
      throw new DropftpError('DROPFTP_ERR_CONFIG', `admin.requireToken: needs a token (${ADMIN_TOKEN_ENV} or admin.tokenFile)`);
    }
    this.#tokenDigest = this.#token ? digest(this.#token) : null;
    this.#cookieValue = this.#token ? createHmac('sha256', this.#token).update('dropftp admin cookie v1').digest('base64url') : null;
    this.#cookieDigest = this.#cookieValue ? digest(this.#cookieValue) : null;
    const bound = listenAddress.toLowerCase();
    this.#hosts = new Set([bound, ...(options.hosts ?? []).map((h) => hostName(h) ?? h.toLowerCase())]);
    if (isLoopback(bound)) for (const name of ['localhost', '127.0.0.1', '::1']) this.#hosts.add(name);
    // A wildcard bind is nobody's Host: operators name the host in admin.hosts.
    this.#hosts.delete('0.0.0.0');
    this.#hosts.delete('::');
  }

  /** True when the status page is served at all (a non-loopback listener needs a token). */
  get enabled(): boolean {
    return !this.tokenRequired || this.#token !== null;
  }

  /** DNS rebinding guard: the Host must name this listener (any port: SSH tunnels remap it). */
  hostAllowed(req: IncomingMessage): boolean {
    const name = hostName(req.headers.host);
    return name !== null && this.#hosts.has(name);
  }

  authenticate(req: IncomingMessage): AuthResult {
    if (!this.enabled) return { ok: false, status: 503, reason: `status page off: a listener outside loopback needs a token (${ADMIN_TOKEN_ENV} or admin.tokenFile)` };
    const auth = req.headers.authorization;
    if (auth !== undefined) {
      const m = /^Bearer +(\S+)\s*$/i.exec(auth);
      if (m && this.#tokenDigest && sameSecret(m[1]!, this.#tokenDigest)) return { ok: true, via: 'bearer' };
      return { ok: false, status: 401, reason: 'bad token' };
    }
    const cookie = readCookie(req.headers.cookie, COOKIE_NAME);
    if (cookie !== null && this.#cookieDigest && sameSecret(cookie, this.#cookieDigest)) return { ok: true, via: 'cookie' };
    if (!this.tokenRequired) return { ok: true, via: 'open' };
    return { ok: false, status: 401, reason: cookie === null ? 'token required' : 'bad token' };
  }

  /** The login form's token, checked; the Set-Cookie value on success. */
  login(token: string): string | null {
    if (!this.#tokenDigest || !this.#cookieValue || !sameSecret(token.trim(), this.#tokenDigest)) return null;
    return `${COOKIE_NAME}=${this.#cookieValue}; HttpOnly; SameSite=Strict; Path=/`;
  }

  static readonly logoutCookie = `${COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`;

  /**
   * A state-changing request from a browser must come from this very page: Origin (sent by every
   * browser on POST) equal to http(s)://Host, Sec-Fetch-Site same-origin when present, and (unless
   * it carries a Bearer token, which no cross-site form can) the CSRF value in a custom header,
   * which no cross-site page can send without a CORS preflight that this server never grants.
   */
  crossSiteRefusal(req: IncomingMessage, auth: AuthResult & { ok: true }, needCsrf: boolean): string | null {
    const origin = req.headers.origin;
    const host = req.headers.host ?? '';
    if (origin !== undefined && origin !== `http://${host}` && origin !== `https://${host}`) return 'cross-origin request';
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') return 'cross-site request';
    if (needCsrf && auth.via !== 'bearer') {
      const given = req.headers[CSRF_HEADER];
      if (typeof given !== 'string' || !sameSecret(given, digest(this.csrf))) return `missing or wrong ${CSRF_HEADER} header`;
    }
    return null;
  }
}

function readCookie(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}
