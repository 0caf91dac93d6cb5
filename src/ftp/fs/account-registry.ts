// The storage accounts a running server serves, by name: for each, an access token (OAuth2 refresh
// grant from <dataDir>/accounts.yaml), the transfer engine's account, an RPC client and the
// account's one directory cache (SyncRegistry), bundled as an AccountStore shared by every session
// and mount. Main thread. Invariants: on the embedded local box an account named by the users file
// is created on first use and its refresh token kept (mode 0600); one AccountStore per name for the
// server's life; accounts.yaml is rewritten by one writer at a time. With a token manager
// (src/auth), accounts of the credentials file point at their own base URLs, every access token
// comes from the manager (refreshed before expiry and after a 401) and each new one reaches the engine.

import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { DropftpError } from '../../errors.ts';
import { DropboxRpc, sharedAgent, type RpcObserver } from '../../dropbox/rpc.ts';
import type { CallPacer } from '../../dropbox/request.ts';
import type { AccountCredentials } from '../../auth/credentials-file.ts';
import type { TokenManager } from '../../auth/token-manager.ts';
import type { LocalBox, LocalBoxAccount } from '../../localbox/index.ts';
import type { SyncRegistry } from '../../sync/index.ts';
import { AccountStore } from './account-store.ts';
import { AsideJournal } from './aside-journal.ts';

type StoredAccount = Omit<LocalBoxAccount, 'accessToken'>;

export interface EngineAccounts {
  /** `hooks.refresh`: how the engine gets a fresh token after a 401 in a running transfer. */
  setAccount(
    account: { name: string; apiUrl: string; contentUrl: string; accessToken: string },
    hooks?: { refresh?: (staleToken: string) => Promise<string> },
  ): void;
  /** The account's call-rate pacer, shared with the transfers' calls (RPC and the feed start through it). */
  pacerFor(name: string): CallPacer;
  readonly options: { readonly maxRetryAfterSec: number };
}

export interface AccountRegistryOptions {
  box: LocalBox;
  dataDir: string;
  engine: EngineAccounts;
  /** Directory caches; null serves every read from the RPC client. */
  sync: SyncRegistry | null;
  /** Short-lived tokens for every account (without it: one token per account, fetched at open). */
  tokens?: TokenManager;
  /**
   * Dropbox accounts from `dropftp auth` (by name; they win over local box accounts). Asked again
   * for each name not seen yet, so an account linked while the server runs is found after SIGHUP.
   */
  credentials?: () => Promise<Record<string, AccountCredentials>>;
  /** Told about every RPC request (metrics). */
  rpcObserver?: RpcObserver;
  /** Where warnings go (an unreadable journal of moves aside, an entry not put back yet). */
  warn?: (message: string) => void;
}

export class AccountRegistry {
  readonly #options: AccountRegistryOptions;
  readonly #stores = new Map<string, Promise<AccountStore>>();
  readonly #releases: (() => void)[] = [];
  #fileWrite: Promise<void> = Promise.resolve();
  #journal: Promise<AsideJournal> | null = null;

  constructor(options: AccountRegistryOptions) {
    this.#options = options;
    const { tokens, engine } = options;
    // A refreshed token (before expiry, after a 401) applies to the engine's transfers opened from now on.
    if (tokens) this.#releases.push(tokens.onToken(({ name, apiUrl, contentUrl, accessToken }) => engine.setAccount({ name, apiUrl, contentUrl, accessToken })));
  }

  get #file(): string {
    return join(this.#options.dataDir, 'accounts.yaml');
  }

  /** The account's store (created, tokened and registered with the engine on first use). */
  get(name: string): Promise<AccountStore> {
    let store = this.#stores.get(name);
    if (!store) {
      store = this.#open(name);
      store.catch(() => this.#stores.delete(name));
      this.#stores.set(name, store);
    }
    return store;
  }

  /** A fresh access token for the account (tests use it to act "elsewhere", through the HTTP API). */
  async accessToken(name: string): Promise<string> {
    const { tokens } = this.#options;
    if (!tokens) return this.#token(await this.#stored(name));
    await this.#manage(tokens, name);
    return tokens.accessToken(name);
  }

  async #manage(tokens: TokenManager, name: string): Promise<void> {
    if (tokens.has(name)) return;
    const credentials = (await this.#options.credentials?.())?.[name];
    if (tokens.has(name)) return;
    if (credentials) return tokens.add({ name, ...credentials });
    const stored = await this.#stored(name);
    if (tokens.has(name)) return;
    const url = this.#options.box.url;
    tokens.add({ name, apiUrl: url, contentUrl: url, appKey: stored.appKey, appSecret: stored.appSecret, refreshToken: stored.refreshToken });
  }

  /** Lets go of the directory caches (the SyncRegistry's own close() stops them). */
  close(): void {
    for (const release of this.#releases.splice(0)) release();
  }

  async #open(name: string): Promise<AccountStore> {
    const { box, engine, sync, tokens } = this.#options;
    const accessToken = await this.accessToken(name);
    const { apiUrl, contentUrl } = tokens ? tokens.account(name) : { apiUrl: box.url, contentUrl: box.url };
    // After a 401 in a running transfer the engine asks the token manager (one refresh per account).
    engine.setAccount({ name, apiUrl, contentUrl, accessToken }, tokens ? { refresh: (stale) => tokens.refreshAfterExpired(name, stale) } : {});
    const paced = { pacer: engine.pacerFor(name), maxRetryAfterMs: engine.options.maxRetryAfterSec * 1000 };
    const rpc = new DropboxRpc({ name, apiUrl, ...paced, ...(tokens ? { tokens: tokens.provider(name) } : { accessToken }) }, sharedAgent(), this.#options.rpcObserver ?? null);
    let cache = null;
    if (sync) {
      const held = sync.acquire({ name, apiUrl, accessToken, maxRetryAfterMs: paced.maxRetryAfterMs, ...(tokens ? { tokens: tokens.provider(name) } : {}) });
      this.#releases.push(held.release);
      cache = held.cache;
    }
    // What a previous run moved aside and did not settle goes back before any session uses the store.
    this.#journal ??= AsideJournal.open(join(this.#options.dataDir, 'asides.json'), this.#options.warn);
    const journal = await this.#journal;
    const store = new AccountStore(name, rpc, cache, journal);
    const replayed = await store.replayAsides(this.#options.warn);
    if (replayed > 0) this.#options.warn?.(`${name}: put back ${replayed} entries a previous run had moved aside and not settled`);
    return store;
  }

  async #readFile(): Promise<Record<string, StoredAccount>> {
    try {
      return (parse(await readFile(this.#file, 'utf8')) ?? {}) as Record<string, StoredAccount>;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new DropftpError('DROPFTP_ERR_CONFIG', `${this.#file}: ${(err as Error).message}`);
    }
  }

  async #stored(name: string): Promise<StoredAccount> {
    const existing = (await this.#readFile())[name];
    if (existing) return existing;
    // One writer at a time: two accounts created at once must both end up in the file.
    const write = this.#fileWrite.then(async () => {
      const stored = await this.#readFile();
      if (stored[name]) return;
      const created = await this.#options.box.createAccount(name);
      stored[name] = { name: created.name, accountId: created.accountId, refreshToken: created.refreshToken, appKey: created.appKey, appSecret: created.appSecret };
      await writeFile(this.#file, '# local box accounts of this data directory (refresh tokens: keep private)\n' + stringify(stored), { mode: 0o600 });
    });
    this.#fileWrite = write.catch(() => {});
    await write;
    const account = (await this.#readFile())[name];
    if (!account) throw new DropftpError('DROPFTP_ERR_CONFIG', `account ${name} could not be created`);
    return account;
  }

  async #token(account: StoredAccount): Promise<string> {
    // Short-lived access tokens: always start from a fresh one (OAuth2 refresh grant).
    const res = await fetch(`${this.#options.box.url}/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: account.refreshToken, client_id: account.appKey, client_secret: account.appSecret }),
    });
    if (!res.ok) throw new DropftpError('DROPFTP_ERR_UPSTREAM_AUTH', `local box refused the stored refresh token of ${account.name} (HTTP ${res.status})`);
    const body = (await res.json()) as { access_token?: string };
    if (!body.access_token) throw new DropftpError('DROPFTP_ERR_UPSTREAM_AUTH', 'local box token response without access_token');
    return body.access_token;
  }
}
