// The Dropbox RPC side (metadata: get_metadata, list_folder, create_folder_v2, delete_v2, move_v2)
// through the official `dropbox` SDK, whose fetch is pointed at a base URL (Dropbox itself or the
// local box). Main thread. Invariants: every failure is a DropftpError (errors.ts); 429/5xx/network
// failures of these idempotent-or-checked calls are retried a few times honouring retry_after;
// identical read calls in flight at once share one request (2,000 clients listing one folder make
// one list_folder call, not 2,000); nothing is cached beyond that. With a token provider, each call
// takes the account's current access token and a 401 expired_access_token is retried once with a
// refreshed one (the provider refreshes once for all callers holding the stale token).

import { Dropbox } from 'dropbox';
import { Agent, fetch as undiciFetch } from 'undici';
import { DropftpError } from '../errors.ts';
import type { TokenProvider } from '../auth/token-manager.ts';
import { errorTags, mapDropboxError, retryAfterMs } from './errors.ts';

export interface RpcAccount {
  name: string;
  /** 'https://api.dropboxapi.com' or the local box's URL. */
  apiUrl: string;
  /** A fixed token (tests, tools); ignored when `tokens` is given. */
  accessToken?: string;
  /** Short-lived tokens from the token manager. */
  tokens?: TokenProvider;
}

/** Told about every HTTP attempt (metrics). `status` 0: no HTTP answer (network failure). */
export interface RpcObserver {
  request(route: string, status: number): void;
  retry(route: string): void;
}

export interface DropboxEntry {
  tag: 'file' | 'folder';
  name: string;
  pathLower: string;
  pathDisplay: string;
  id: string;
  size: number;
  /** Files: client_modified; folders: none. */
  modified: Date | null;
  rev: string | null;
}

const MAX_ATTEMPTS = 4;

type SdkEntry = { '.tag': string; name: string; path_lower?: string; path_display?: string; id?: string; size?: number; client_modified?: string; rev?: string };

function toEntry(raw: SdkEntry): DropboxEntry | null {
  if (raw['.tag'] !== 'file' && raw['.tag'] !== 'folder') return null;
  return {
    tag: raw['.tag'],
    name: raw.name,
    pathLower: raw.path_lower ?? '',
    pathDisplay: raw.path_display ?? '',
    id: raw.id ?? '',
    size: raw['.tag'] === 'file' ? Number(raw.size ?? 0) : 0,
    modified: raw.client_modified ? new Date(raw.client_modified) : null,
    rev: raw.rev ?? null,
  };
}

export class DropboxRpc {
  /** Pages one listFolder may read (2,000 entries each on Dropbox: 20 million entries). */
  static maxListPages = 10_000;
  readonly account: RpcAccount;
  readonly #inflight = new Map<string, Promise<unknown>>();
  readonly #fetch: typeof fetch;
  readonly #tokens: TokenProvider;
  readonly #observer: RpcObserver | null;
  // One SDK client per token: a call always runs with the token it was given, so a 401 names it.
  #sdk: { token: string; client: Dropbox } | null = null;

  constructor(account: RpcAccount, dispatcher: Agent = sharedAgent(), observer: RpcObserver | null = null) {
    this.account = account;
    const base = account.apiUrl.replace(/\/+$/, '');
    const rewrite = /^https:\/\/[^/]+/;
    const customFetch = (url: string, init: Record<string, unknown>) =>
      undiciFetch(url.replace(rewrite, base), { ...(init as object), dispatcher } as Parameters<typeof undiciFetch>[1]);
    this.#fetch = customFetch as unknown as typeof fetch;
    const fixed = account.accessToken ?? '';
    this.#tokens = account.tokens ?? { get: async () => fixed, expired: async () => fixed };
    this.#observer = observer;
  }

  #client(token: string): Dropbox {
    if (this.#sdk?.token !== token) this.#sdk = { token, client: new Dropbox({ accessToken: token, fetch: this.#fetch }) };
    return this.#sdk.client;
  }

  /** users/get_current_account: who the token belongs to (`dropftp auth` verifies with it). */
  async currentAccount(): Promise<{ accountId: string; email: string; displayName: string }> {
    const res = await this.#call('users/get_current_account', (sdk) => sdk.usersGetCurrentAccount());
    return { accountId: res.result.account_id, email: res.result.email, displayName: res.result.name.display_name };
  }

  /** Metadata of one path (never the root, which Dropbox does not describe). */
  getMetadata(path: string): Promise<DropboxEntry> {
    return this.#shared(`meta\0${path.toLowerCase()}`, async () => {
      const res = await this.#call('files/get_metadata', (sdk) => sdk.filesGetMetadata({ path }));
      const entry = toEntry(res.result as SdkEntry);
      if (!entry) throw new DropftpError('DROPFTP_ERR_NOT_FOUND', `get_metadata ${path}: deleted`);
      return entry;
    });
  }

  /**
   * Every entry of a folder (all pages). '' is the root. A server that keeps answering has_more
   * with the cursor it was given, or beyond maxListPages pages, is answered DROPFTP_ERR_UPSTREAM:
   * the cursor is the whole state of a listing, so either would loop (and hold memory) for ever.
   */
  listFolder(path: string): Promise<DropboxEntry[]> {
    return this.#shared(`list\0${path.toLowerCase()}`, async () => {
      const entries: DropboxEntry[] = [];
      let res = await this.#call('files/list_folder', (sdk) => sdk.filesListFolder({ path, limit: 2000 }));
      for (let pages = 1; ; pages++) {
        for (const raw of res.result.entries as SdkEntry[]) {
          const entry = toEntry(raw);
          if (entry) entries.push(entry);
        }
        if (!res.result.has_more) return entries;
        const cursor = res.result.cursor;
        if (pages >= DropboxRpc.maxListPages) {
          throw new DropftpError('DROPFTP_ERR_UPSTREAM', `list_folder ${path}: still has_more after ${pages} pages`);
        }
        res = await this.#call('files/list_folder/continue', (sdk) => sdk.filesListFolderContinue({ cursor }));
        if (res.result.has_more && res.result.cursor === cursor) {
          throw new DropftpError('DROPFTP_ERR_UPSTREAM', `list_folder/continue ${path}: has_more with an unchanged cursor`);
        }
      }
    });
  }

  /** True when the folder has at least one entry. */
  async hasChildren(path: string): Promise<boolean> {
    const res = await this.#call('files/list_folder', (sdk) => sdk.filesListFolder({ path, limit: 1 }));
    return res.result.entries.length > 0;
  }

  async createFolder(path: string): Promise<void> {
    await this.#call('files/create_folder_v2', (sdk) => sdk.filesCreateFolderV2({ path, autorename: false }), false);
  }

  /** Deletes a path; with parentRev, only that very version of a file. */
  async delete(path: string, parentRev?: string): Promise<void> {
    await this.#call('files/delete_v2', (sdk) => sdk.filesDeleteV2(parentRev ? { path, parent_rev: parentRev } : { path }), false);
  }

  async move(fromPath: string, toPath: string): Promise<void> {
    await this.#call('files/move_v2', (sdk) => sdk.filesMoveV2({ from_path: fromPath, to_path: toPath, autorename: false }), false);
  }

  #shared<T>(key: string, run: () => Promise<T>): Promise<T> {
    const existing = this.#inflight.get(key);
    if (existing) return existing as Promise<T>;
    const promise = run().finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, promise);
    return promise;
  }

  /**
   * Runs one SDK call with retries; `idempotent` false retries only when nothing was done (429, and
   * 401 expired_access_token: Dropbox refused the call before doing anything).
   */
  async #call<T>(what: string, run: (sdk: Dropbox) => Promise<T>, idempotent = true): Promise<T> {
    let token = await this.#tokens.get();
    let refreshed = false;
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await run(this.#client(token));
        this.#observer?.request(what, 200);
        return result;
      } catch (err) {
        const status = (err as { status?: unknown }).status;
        this.#observer?.request(what, typeof status === 'number' ? status : 0);
        if (status === 401 && !refreshed && errorTags((err as { error?: { error?: unknown } }).error?.error).includes('expired_access_token')) {
          refreshed = true;
          const next = await this.#tokens.expired(token);
          if (next === token) throw mapDropboxError(err, what); // a fixed token: nothing newer to try
          token = next;
          attempt--; // an auth refresh is not a fault retry
          this.#observer?.retry(what);
          continue;
        }
        const waitMs = retryAfterMs(err);
        const retryable = waitMs !== null && (idempotent || status === 429);
        if (!retryable || attempt >= MAX_ATTEMPTS) throw mapDropboxError(err, what);
        this.#observer?.retry(what);
        await new Promise((resolve) => setTimeout(resolve, waitMs * attempt));
      }
    }
  }
}

let agent: Agent | null = null;

/** One keep-alive pool for all RPC calls of the process, bounded per origin. */
export function sharedAgent(): Agent {
  agent ??= new Agent({ connections: 64, keepAliveTimeout: 10_000 });
  return agent;
}

/** Closes the shared agent (tests and shutdown). */
export async function closeSharedAgent(): Promise<void> {
  const current = agent;
  agent = null;
  await current?.close();
}
