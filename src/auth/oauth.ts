// The OAuth 2 pieces dropftp uses against Dropbox (or any base URL that speaks its API): PKCE
// (RFC 7636, S256), the no-redirect authorize URL, and the /oauth2/token grants (code exchange,
// refresh). Main thread. Invariants: parameters and client credentials travel in a form body
// (RFC 6749 §2.3.1, §4.1.3) — never in the URL, where the SDK's DropboxAuth puts the refresh token
// and secret (dropbox-api.md §6.2); token calls go through the Dropbox request layer (429, 5xx and
// network failures retried there; a code exchange only when nothing was done); failures are DropftpErrors.

import { createHash, randomBytes } from 'node:crypto';
import { fetch } from 'undici';
import { DropftpError } from '../errors.ts';
import { DropboxRequests, type RequestObserver } from '../dropbox/request.ts';
import { DROPBOX_API_URL } from './credentials-file.ts';

export interface Pkce {
  verifier: string;
  challenge: string;
}

/** A 64-byte random verifier (86 base64url chars, within RFC 7636's 43..128) and its S256 challenge. */
export function createPkce(): Pkce {
  const verifier = randomBytes(64).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

/** Where the user approves the app: Dropbox's web page, or `<apiUrl>/oauth2/authorize` elsewhere. */
export function authorizeUrl(apiUrl: string, appKey: string, pkce: Pkce): string {
  const base = apiUrl.replace(/\/+$/, '') === DROPBOX_API_URL ? 'https://www.dropbox.com' : apiUrl.replace(/\/+$/, '');
  const params = new URLSearchParams({
    client_id: appKey,
    response_type: 'code',
    token_access_type: 'offline', // short-lived access token + refresh token
    code_challenge: pkce.challenge,
    code_challenge_method: 'S256',
  });
  return `${base}/oauth2/authorize?${params}`;
}

export interface TokenGrant {
  accessToken: string;
  /** Lifetime from the server's expires_in; Infinity when it gave none. */
  expiresInMs: number;
  refreshToken?: string;
  accountId?: string;
}

export interface ClientCredentials {
  apiUrl: string;
  appKey: string;
  appSecret?: string;
}

export interface TokenCallOptions {
  /** The whole call, retries included. Default 30 s. */
  timeoutMs?: number;
  /** Attempts on 5xx and network failures. Default 4. */
  maxAttempts?: number;
  /** Told about every token endpoint request (metrics). */
  observer?: RequestObserver | null;
}

async function tokenCall(client: ClientCredentials, params: Record<string, string>, idempotent: boolean, options: TokenCallOptions): Promise<TokenGrant> {
  const body = new URLSearchParams({ ...params, client_id: client.appKey });
  if (client.appSecret) body.set('client_secret', client.appSecret);
  const url = `${client.apiUrl.replace(/\/+$/, '')}/oauth2/token`;
  // No token to send or refresh, and not a user API call: unpaced. Errors name the grant, never a token.
  const requests = new DropboxRequests({ account: client.appKey, tokens: null, observer: options.observer ?? null, ...(options.maxAttempts ? { maxAttempts: options.maxAttempts } : {}) });
  const res = await requests.run(
    { route: 'oauth2/token', idempotent, paced: false, auth: false, signal: AbortSignal.timeout(options.timeoutMs ?? 30_000) },
    (_authorization, signal) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: body.toString(), ...(signal ? { signal } : {}) }),
  );
  const json = (await res.json()) as Record<string, unknown> | null;
  if (json === null || typeof json !== 'object' || typeof json.access_token !== 'string' || json.access_token === '') {
    throw new DropftpError('DROPFTP_ERR_UPSTREAM_AUTH', `token endpoint ${params.grant_type}: no access_token in the reply`);
  }
  const expiresIn = typeof json.expires_in === 'number' && json.expires_in > 0 ? json.expires_in : null;
  const grant: TokenGrant = { accessToken: json.access_token, expiresInMs: expiresIn === null ? Infinity : expiresIn * 1000 };
  if (typeof json.refresh_token === 'string') grant.refreshToken = json.refresh_token;
  if (typeof json.account_id === 'string') grant.accountId = json.account_id;
  return grant;
}

/** authorization_code grant with the PKCE verifier (no redirect_uri: the no-redirect flow). */
export function exchangeCode(client: ClientCredentials, code: string, verifier: string, options: TokenCallOptions = {}): Promise<TokenGrant> {
  // A code is good for one exchange: sent again only when the first try surely did nothing.
  return tokenCall(client, { grant_type: 'authorization_code', code, code_verifier: verifier }, false, options);
}

/** refresh_token grant: a new short-lived access token (Dropbox returns no new refresh token). */
export function refreshAccessToken(client: ClientCredentials, refreshToken: string, options: TokenCallOptions = {}): Promise<TokenGrant> {
  return tokenCall(client, { grant_type: 'refresh_token', refresh_token: refreshToken }, true, options);
}
