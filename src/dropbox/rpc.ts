// The Dropbox RPC side (metadata: get_metadata, list_folder, create_folder_v2, delete_v2, move_v2)
// through the official `dropbox` SDK, whose fetch is pointed at a base URL (Dropbox itself or the
// local box). Main thread. Invariants: every failure is a DropftpError (errors.ts); 429/5xx/network
// failures of these idempotent-or-checked calls are retried a few times honouring retry_after;
// identical read calls in flight at once share one request (2,000 clients listing one folder make
// one list_folder call, not 2,000); nothing is cached beyond that.

import { Dropbox } from 'dropbox';
import { Agent, fetch as undiciFetch } from 'undici';
import { DropftpError } from '../errors.ts';
import { mapDropboxError, retryAfterMs } from './errors.ts';

export interface RpcAccount {
  name: string;
  /** 'https://api.dropboxapi.com' or the local box's URL. */
  apiUrl: string;
  accessToken: string;
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
  readonly account: RpcAccount;
  readonly #sdk: Dropbox;
  readonly #inflight = new Map<string, Promise<unknown>>();

  constructor(account: RpcAccount, dispatcher: Agent = sharedAgent()) {
    this.account = account;
    const base = account.apiUrl.replace(/\/+$/, '');
    const rewrite = /^https:\/\/[^/]+/;
    const customFetch = (url: string, init: Record<string, unknown>) =>
      undiciFetch(url.replace(rewrite, base), { ...(init as object), dispatcher } as Parameters<typeof undiciFetch>[1]);
    this.#sdk = new Dropbox({ accessToken: account.accessToken, fetch: customFetch as unknown as typeof fetch });
  }

  /** Metadata of one path (never the root, which Dropbox does not describe). */
  getMetadata(path: string): Promise<DropboxEntry> {
    return this.#shared(`meta\0${path.toLowerCase()}`, async () => {
      const res = await this.#call('get_metadata', () => this.#sdk.filesGetMetadata({ path }));
      const entry = toEntry(res.result as SdkEntry);
      if (!entry) throw new DropftpError('DROPFTP_ERR_NOT_FOUND', `get_metadata ${path}: deleted`);
      return entry;
    });
  }

  /** Every entry of a folder (all pages). '' is the root. */
  listFolder(path: string): Promise<DropboxEntry[]> {
    return this.#shared(`list\0${path.toLowerCase()}`, async () => {
      const entries: DropboxEntry[] = [];
      let res = await this.#call('list_folder', () => this.#sdk.filesListFolder({ path, limit: 2000 }));
      for (;;) {
        for (const raw of res.result.entries as SdkEntry[]) {
          const entry = toEntry(raw);
          if (entry) entries.push(entry);
        }
        if (!res.result.has_more) return entries;
        const cursor = res.result.cursor;
        res = await this.#call('list_folder/continue', () => this.#sdk.filesListFolderContinue({ cursor }));
      }
    });
  }

  /** True when the folder has at least one entry. */
  async hasChildren(path: string): Promise<boolean> {
    const res = await this.#call('list_folder', () => this.#sdk.filesListFolder({ path, limit: 1 }));
    return res.result.entries.length > 0;
  }

  async createFolder(path: string): Promise<void> {
    await this.#call('create_folder_v2', () => this.#sdk.filesCreateFolderV2({ path, autorename: false }), false);
  }

  /** Deletes a path; with parentRev, only that very version of a file. */
  async delete(path: string, parentRev?: string): Promise<void> {
    await this.#call('delete_v2', () => this.#sdk.filesDeleteV2(parentRev ? { path, parent_rev: parentRev } : { path }), false);
  }

  async move(fromPath: string, toPath: string): Promise<void> {
    await this.#call('move_v2', () => this.#sdk.filesMoveV2({ from_path: fromPath, to_path: toPath, autorename: false }), false);
  }

  #shared<T>(key: string, run: () => Promise<T>): Promise<T> {
    const existing = this.#inflight.get(key);
    if (existing) return existing as Promise<T>;
    const promise = run().finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, promise);
    return promise;
  }

  /** Runs one SDK call with retries; `idempotent` false retries only when nothing was done (429). */
  async #call<T>(what: string, run: () => Promise<T>, idempotent = true): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await run();
      } catch (err) {
        const waitMs = retryAfterMs(err);
        const status = (err as { status?: number }).status;
        const retryable = waitMs !== null && (idempotent || status === 429);
        if (!retryable || attempt >= MAX_ATTEMPTS) throw mapDropboxError(err, what);
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
