// Accounts, their namespaces, tokens and OAuth authorization codes. Runs in the local box child.
// Invariants: one namespace per account; an access token is valid until revoked or expired by an
// admin call; refresh tokens mint new access tokens; authorization codes are single-use.

import { createHash, randomBytes } from 'node:crypto';
import type { LocalBoxAccount } from '../types.ts';
import { nextCounter, type Db } from './db.ts';

export interface AccountRow {
  name: string;
  account_id: string;
  ns: number;
  app_key: string;
  app_secret: string;
  created: string;
}

export type TokenCheck = { ok: true; account: AccountRow } | { ok: false; tag: 'invalid_access_token' | 'expired_access_token' };

const CODE_TTL_MS = 10 * 60 * 1000;

export class Accounts {
  private readonly cache = new Map<string, AccountRow>(); // access token → account (valid tokens only)

  constructor(private readonly db: Db) {}

  byName(name: string): AccountRow | undefined {
    return this.db.prepare('SELECT * FROM accounts WHERE name = ?').get(name) as AccountRow | undefined;
  }

  byNs(ns: number): AccountRow | undefined {
    return this.db.prepare('SELECT * FROM accounts WHERE ns = ?').get(ns) as AccountRow | undefined;
  }

  /** Creates the account (or returns the existing one) with a long-lived access token and a refresh token. */
  create(name: string): LocalBoxAccount {
    return this.db.transaction((): LocalBoxAccount => {
      let acc = this.byName(name);
      if (!acc) {
        acc = {
          name,
          account_id: `dbid:AA${randomBytes(20).toString('base64url').slice(0, 25)}`,
          ns: nextCounter(this.db, 'ns', 1000),
          app_key: randomBytes(8).toString('hex'),
          app_secret: randomBytes(8).toString('hex'),
          created: new Date().toISOString(),
        };
        this.db
          .prepare('INSERT INTO accounts VALUES (@name, @account_id, @ns, @app_key, @app_secret, @created)')
          .run(acc);
      }
      const refresh = this.liveToken(name, 'refresh') ?? this.mint(name, 'refresh');
      const access = this.liveToken(name, 'access') ?? this.mint(name, 'access', refresh);
      return {
        name,
        accountId: acc.account_id,
        accessToken: access,
        refreshToken: refresh,
        appKey: acc.app_key,
        appSecret: acc.app_secret,
      };
    })();
  }

  private liveToken(name: string, kind: 'access' | 'refresh'): string | undefined {
    const row = this.db
      .prepare('SELECT token FROM tokens WHERE account = ? AND kind = ? AND expired = 0 AND revoked = 0 ORDER BY created_ms LIMIT 1')
      .get(name, kind) as { token: string } | undefined;
    return row?.token;
  }

  /**
   * A new token. Its family is the refresh token it belongs to (a refresh token is its own family; an
   * access token minted from one, or with one, names it): auth/token/revoke revokes a whole family.
   */
  mint(name: string, kind: 'access' | 'refresh', family: string | null = null): string {
    const token = (kind === 'access' ? 'sl.' : '') + randomBytes(kind === 'access' ? 48 : 32).toString('base64url');
    const fam = kind === 'refresh' ? token : family;
    this.db.prepare('INSERT INTO tokens (token, account, kind, created_ms, family) VALUES (?, ?, ?, ?, ?)').run(token, name, kind, Date.now(), fam);
    return token;
  }

  checkAccess(token: string): TokenCheck {
    const cached = this.cache.get(token);
    if (cached) return { ok: true, account: cached };
    const row = this.db.prepare("SELECT * FROM tokens WHERE token = ? AND kind = 'access'").get(token) as
      | { account: string; expired: number; revoked: number }
      | undefined;
    if (!row || row.revoked) return { ok: false, tag: 'invalid_access_token' };
    if (row.expired) return { ok: false, tag: 'expired_access_token' };
    const account = this.byName(row.account);
    if (!account) return { ok: false, tag: 'invalid_access_token' };
    this.cache.set(token, account);
    return { ok: true, account };
  }

  /** Refresh grant: a new access token for the refresh token's account, if the client matches. */
  refresh(refreshToken: string, clientId: string | null, clientSecret: string | null): { account: AccountRow; access: string } | string {
    const row = this.db.prepare("SELECT * FROM tokens WHERE token = ? AND kind = 'refresh' AND revoked = 0").get(refreshToken) as
      | { account: string }
      | undefined;
    if (!row) return 'refresh token is invalid or revoked';
    const account = this.byName(row.account)!;
    const bad = this.badClient(account, clientId, clientSecret);
    if (bad) return bad;
    return { account, access: this.mint(account.name, 'access', refreshToken) };
  }

  private badClient(account: AccountRow, clientId: string | null, clientSecret: string | null): string | null {
    if (clientId !== null && clientId !== account.app_key) return 'invalid client_id';
    if (clientSecret !== null && clientSecret !== account.app_secret) return 'invalid client secret';
    return null;
  }

  /** Admin: an authorization code as if the user had approved the app in a browser (PKCE S256 or plain). */
  mintCode(name: string, challenge: string | null, method: string | null, redirectUri: string | null): string {
    const code = randomBytes(24).toString('base64url');
    this.db
      .prepare('INSERT INTO auth_codes VALUES (?, ?, ?, ?, ?, ?)')
      .run(code, name, challenge, method ?? (challenge ? 'S256' : null), redirectUri, Date.now() + CODE_TTL_MS);
    return code;
  }

  /** authorization_code grant. Returns the tokens or an error description. */
  exchangeCode(
    code: string,
    verifier: string | null,
    redirectUri: string | null,
    clientId: string | null,
    clientSecret: string | null,
  ): { account: AccountRow; access: string; refresh: string } | string {
    return this.db.transaction(() => {
      const row = this.db.prepare('SELECT * FROM auth_codes WHERE code = ?').get(code) as
        | { account: string; challenge: string | null; method: string | null; redirect_uri: string | null; expires_ms: number }
        | undefined;
      if (!row || row.expires_ms < Date.now()) return 'code doesn\'t exist or has expired';
      this.db.prepare('DELETE FROM auth_codes WHERE code = ?').run(code);
      const account = this.byName(row.account)!;
      const bad = this.badClient(account, clientId, clientSecret);
      if (bad) return bad;
      if (row.redirect_uri !== null && row.redirect_uri !== redirectUri) return 'redirect_uri mismatch';
      if (row.challenge !== null) {
        if (verifier === null) return 'missing code_verifier';
        const computed = row.method === 'plain' ? verifier : createHash('sha256').update(verifier).digest('base64url');
        if (computed !== row.challenge) return 'invalid code_verifier';
      } else if (clientSecret === null) {
        return 'no client secret and no PKCE';
      }
      const refresh = this.mint(account.name, 'refresh');
      return { account, access: this.mint(account.name, 'access', refresh), refresh };
    })();
  }

  /** Admin: makes every current access token of the account answer 401 expired_access_token. */
  expireTokens(name: string): number {
    this.cache.clear();
    return this.db.prepare("UPDATE tokens SET expired = 1 WHERE account = ? AND kind = 'access'").run(name).changes;
  }

  /**
   * auth/token/revoke: revokes this access token and, as Dropbox does, its refresh token family (the
   * refresh token and every access token minted from it). A token from before families were kept
   * revokes alone.
   */
  revoke(token: string): void {
    const row = this.db.prepare('SELECT family FROM tokens WHERE token = ?').get(token) as { family: string | null } | undefined;
    if (row?.family) this.db.prepare('UPDATE tokens SET revoked = 1 WHERE family = ? OR token = ?').run(row.family, token);
    else this.db.prepare('UPDATE tokens SET revoked = 1 WHERE token = ?').run(token);
    // Cached access checks of that family are dropped with the rest (revoking is rare).
    this.cache.clear();
  }
}
