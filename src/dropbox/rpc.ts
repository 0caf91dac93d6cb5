// The Dropbox RPC side (metadata: get_metadata, list_folder, create_folder_v2, delete_v2, move_v2)
// through the official `dropbox` SDK, whose fetch is the account's request layer (request.ts): it
// points the SDK at a base URL (Dropbox itself or the local box), paces, classifies, retries and
// refreshes the token. Main thread. Invariants: every failure is a DropftpError; calls that are
// not idempotent (create, delete, move) are sent again only when Dropbox did nothing (429, 401);
// identical read calls in flight at once share one request (2,000 clients listing one folder make
// one list_folder call, not 2,000); nothing is cached beyond that.

import { Dropbox } from 'dropbox';
import { Agent } from 'undici';
import { DropftpError } from '../errors.ts';
import { DropboxRequests, type CallPacer, type RequestObserver, type TokenSource } from './request.ts';

export interface RpcAccount {
  name: string;
  /** 'https://api.dropboxapi.com' or the local box's URL. */
  apiUrl: string;
  /** A fixed token (tests, tools); ignored when `tokens` is given. */
  accessToken?: string;
  /** Short-lived tokens from the token manager. */
  tokens?: TokenSource;
  /** Paces every call start of the account (engine.pacerFor(name)); default none. */
  pacer?: CallPacer | null;
  /** Cap of a server-given delay (default 300 s). */
  maxRetryAfterMs?: number;
}

/** Told about every HTTP attempt (metrics). `status` 0: no HTTP answer (network failure). */
export type RpcObserver = RequestObserver;

/** Routes whose repetition changes nothing: retried after a 5xx or a reset too. */
const IDEMPOTENT = new Set(['files/get_metadata', 'files/list_folder', 'files/list_folder/continue', 'users/get_current_account', 'check/user']);

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

type SdkEntry = { '.tag': string; name: string; path_lower?: string; path_display?: string; id?: string; size?: number; client_modified?: string; rev?: string };

/** A JSON answer without the fields its route promises is as bad as one that is not JSON. */
function malformed(what: string, detail: string): DropftpError {
  return new DropftpError('DROPFTP_ERR_UPSTREAM_MALFORMED', `${what}: ${detail}`);
}

function toEntry(raw: SdkEntry, what: string): DropboxEntry | null {
  if (raw === null || typeof raw !== 'object' || typeof raw.name !== 'string') throw malformed(what, 'an entry without a name');
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

type SdkPage = { entries: SdkEntry[]; cursor: string; has_more: boolean };

function pageOf(result: unknown, what: string): SdkPage {
  const page = result as Partial<SdkPage> | null;
  if (page === null || typeof page !== 'object' || !Array.isArray(page.entries) || typeof page.has_more !== 'boolean' || typeof page.cursor !== 'string') {
    throw malformed(what, 'not a page of entries (entries, cursor, has_more)');
  }
  return page as SdkPage;
}

export class DropboxRpc {
  /** Pages one listFolder may read (2,000 entries each on Dropbox: 20 million entries). */
  static maxListPages = 10_000;
  readonly account: RpcAccount;
  readonly requests: DropboxRequests;
  readonly #inflight = new Map<string, Promise<unknown>>();
  readonly #sdk: Dropbox;

  constructor(account: RpcAccount, dispatcher: Agent = sharedAgent(), observer: RpcObserver | null = null) {
    this.account = account;
    const base = account.apiUrl.replace(/\/+$/, '');
    const fixed = account.accessToken ?? '';
    this.requests = new DropboxRequests({
      account: account.name,
      tokens: account.tokens ?? { get: async () => fixed, expired: async () => fixed },
      pacer: account.pacer ?? null,
      observer,
      dispatcher,
      ...(account.maxRetryAfterMs !== undefined ? { maxRetryAfterMs: account.maxRetryAfterMs } : {}),
    });
    const rewrite = /^https:\/\/[^/]+/;
    // The layer sets each attempt's token: the SDK's own is a placeholder it only copies into the header.
    this.#sdk = new Dropbox({
      accessToken: 'managed-by-the-request-layer',
      fetch: this.requests.fetch({ rewrite: (url) => url.replace(rewrite, base), idempotent: (route) => IDEMPOTENT.has(route) }),
    });
  }

  /** users/get_current_account: who the token belongs to (`dropftp auth` verifies with it). */
  async currentAccount(): Promise<{ accountId: string; email: string; displayName: string }> {
    const res = await this.#call('users/get_current_account', (sdk) => sdk.usersGetCurrentAccount());
    if (typeof res.result?.account_id !== 'string' || typeof res.result.name?.display_name !== 'string') throw malformed('users/get_current_account', 'no account_id or name');
    return { accountId: res.result.account_id, email: res.result.email, displayName: res.result.name.display_name };
  }

  /** Metadata of one path (never the root, which Dropbox does not describe). */
  getMetadata(path: string): Promise<DropboxEntry> {
    return this.#shared(`meta\0${path.toLowerCase()}`, async () => {
      const res = await this.#call('files/get_metadata', (sdk) => sdk.filesGetMetadata({ path }));
      const entry = toEntry(res.result as SdkEntry, 'files/get_metadata');
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
      let page = pageOf((await this.#call('files/list_folder', (sdk) => sdk.filesListFolder({ path, limit: 2000 }))).result, 'files/list_folder');
      for (let pages = 1; ; pages++) {
        for (const raw of page.entries) {
          const entry = toEntry(raw, 'files/list_folder');
          if (entry) entries.push(entry);
        }
        if (!page.has_more) return entries;
        const cursor = page.cursor;
        if (pages >= DropboxRpc.maxListPages) {
          throw new DropftpError('DROPFTP_ERR_UPSTREAM', `list_folder ${path}: still has_more after ${pages} pages`);
        }
        page = pageOf((await this.#call('files/list_folder/continue', (sdk) => sdk.filesListFolderContinue({ cursor }))).result, 'files/list_folder/continue');
        if (page.has_more && page.cursor === cursor) {
          throw new DropftpError('DROPFTP_ERR_UPSTREAM', `list_folder/continue ${path}: has_more with an unchanged cursor`);
        }
      }
    });
  }

  /** True when the folder has at least one entry. */
  async hasChildren(path: string): Promise<boolean> {
    const res = await this.#call('files/list_folder', (sdk) => sdk.filesListFolder({ path, limit: 1 }));
    return pageOf(res.result, 'files/list_folder').entries.length > 0;
  }

  /** Creates a folder; its id (as create_folder_v2 answered; '' if the answer had none). */
  async createFolder(path: string): Promise<string> {
    const res = await this.#call('files/create_folder_v2', (sdk) => sdk.filesCreateFolderV2({ path, autorename: false }));
    const id = (res.result as { metadata?: { id?: unknown } } | null)?.metadata?.id;
    return typeof id === 'string' ? id : '';
  }

  /** Deletes a path; with parentRev, only that very version of a file. */
  async delete(path: string, parentRev?: string): Promise<void> {
    await this.#call('files/delete_v2', (sdk) => sdk.filesDeleteV2(parentRev ? { path, parent_rev: parentRev } : { path }));
  }

  async move(fromPath: string, toPath: string): Promise<void> {
    await this.#call('files/move_v2', (sdk) => sdk.filesMoveV2({ from_path: fromPath, to_path: toPath, autorename: false }));
  }

  #shared<T>(key: string, run: () => Promise<T>): Promise<T> {
    const existing = this.#inflight.get(key);
    if (existing) return existing as Promise<T>;
    const promise = run().finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, promise);
    return promise;
  }

  /** One SDK call; the layer under the SDK's fetch has classified, retried and mapped its failures. */
  async #call<T>(what: string, run: (sdk: Dropbox) => Promise<T>): Promise<T> {
    try {
      return await run(this.#sdk);
    } catch (err) {
      if (err instanceof DropftpError) throw err;
      // Not from the layer: the SDK itself failed (a result it could not use).
      throw new DropftpError('DROPFTP_ERR_UPSTREAM', `${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
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
