// The directory cache of one Dropbox account: a Tree fed by the account's change feed (recursive
// list_folder from the root, then continue + longpoll forever), an Overlay of this gateway's own
// writes, and change fan-out to subscribers. Main thread (one async loop per account).
// Invariants: feed pages are applied strictly in cursor order and the cursor advances only after
// its page is applied (a failed call is repeated with the same cursor: 429/5xx lose nothing);
// a `reset` rebuilds a fresh tree in the background and swaps it in whole; readers never see a
// state older than one they saw before (own writes are masked in until the feed covers them);
// close() aborts the parked longpoll at once and leaves no timer or socket behind.

import { setTimeout as sleep } from 'node:timers/promises';
import { DropftpError } from '../errors.ts';
import { nodeFrom, normalizePath, parentOf, sameEntry, folderNode, type CacheEntry, type Node, type RawMetadata } from './entry.ts';
import type { CallPacer } from '../dropbox/request.ts';
import { FeedClient, FeedError, feedError, type FeedPage } from './feed-client.ts';
import { Overlay } from './overlay.ts';
import { Subscribers, type ChangeListener } from './subscribers.ts';
import { Tree, type TreeChange } from './tree.ts';

/** How long a parked longpoll may stay parked after an own write before it is aborted for a continue. */
const OWN_WRITE_WAKE_MS = 1000;

export interface DirectoryCacheOptions {
  /** 'https://api.dropboxapi.com' or the local box's URL. */
  apiUrl: string;
  accessToken: string;
  /** Rotating tokens (src/auth token manager's provider); without it `accessToken` is used for ever. */
  tokens?: { get(): Promise<string>; expired?(stale: string): Promise<string> } | null;
  /** Paces the feed's list_folder and continue starts (engine.pacerFor(name)); default none. */
  pacer?: CallPacer | null;
  /** Cap of a server-given delay (Retry-After, longpoll backoff; default 300,000). */
  maxRetryAfterMs?: number;
  /** For logs and stats. */
  name?: string;
  /** list_folder page size (1..2000, default 2000). */
  pageLimit?: number;
  /** Longpoll timeout asked of the server (30..480 s, default 30). */
  longpollTimeoutSec?: number;
  /** First delay after a failure the request layer gave up on; doubles per failure (default 250). */
  minBackoffMs?: number;
  /** Cap of that delay, and the delay after a non-retryable failure (default 30,000). */
  maxBackoffMs?: number;
  /** Feed failures (they are retried; this is for logs). */
  onError?: (err: Error) => void;
}

export interface DirectoryCacheStats {
  name: string;
  ready: boolean;
  entries: number;
  pendingLocal: number;
  subscribers: number;
  requests: number;
  retries: number;
  resets: number;
  lastError: string | null;
}

interface Building {
  tree: Tree;
  cursor: string | null;
  chainStart: number;
}

export class DirectoryCache {
  readonly name: string;
  /** Resolves once the first full listing is in. */
  readonly ready: Promise<void>;
  readonly #client: FeedClient;
  readonly #abort = new AbortController();
  readonly #subscribers: Subscribers;
  readonly #overlay = new Overlay();
  readonly #options: Required<Omit<DirectoryCacheOptions, 'name' | 'onError' | 'apiUrl' | 'accessToken' | 'tokens' | 'pacer' | 'maxRetryAfterMs'>>;
  readonly #onError: (err: Error) => void;
  #tree = new Tree();
  #building: Building | null = null;
  #cursor: string | null = null;
  #needContinue = false;
  #chainStart = 0;
  /** The server's longpoll backoff: always honoured. */
  #pollNotBeforeMs = 0;
  /** Our own spacing of longpolls (anti-loop); waived once a catch-up brought real changes. */
  #spacingNotBeforeMs = 0;
  /** The next chain starts no sooner than this, unless it is urgent (#continueUrgent). */
  #chainNotBeforeMs = 0;
  /** The pending continue was asked by refresh() or by a longpoll no own write explains: it does not wait for #chainNotBeforeMs. */
  #continueUrgent = false;
  /** When this gateway last wrote (Date.now()): a longpoll waking soon after may be waking for it. */
  #lastOwnWriteMs = 0;
  /** Ends the wait of #spaceChain (refresh(), close()). */
  #chainWake: AbortController | null = null;
  #pollAbort: AbortController | null = null;
  /** Aborts a longpoll that an own write did not wake (see #afterOwnWrite). */
  #wakeTimer: ReturnType<typeof setTimeout> | null = null;
  #requests = 0;
  #retries = 0;
  #resets = 0;
  #isReady = false;
  #lastError: Error | null = null;
  #loop: Promise<void> | null = null;
  #resolveReady!: () => void;
  #rejectReady!: (err: Error) => void;

  constructor(options: DirectoryCacheOptions) {
    this.name = options.name ?? 'account';
    const pageLimit = options.pageLimit ?? 2000;
    const longpollTimeoutSec = options.longpollTimeoutSec ?? 30;
    if (!(Number.isInteger(pageLimit) && pageLimit >= 1 && pageLimit <= 2000)) throw new DropftpError('DROPFTP_ERR_CONFIG', 'sync.pageLimit: must be an integer 1..2000');
    if (!(Number.isInteger(longpollTimeoutSec) && longpollTimeoutSec >= 30 && longpollTimeoutSec <= 480)) {
      throw new DropftpError('DROPFTP_ERR_CONFIG', 'sync.longpollTimeoutSec: must be an integer 30..480 (Dropbox range)');
    }
    this.#options = { pageLimit, longpollTimeoutSec, minBackoffMs: options.minBackoffMs ?? 250, maxBackoffMs: options.maxBackoffMs ?? 30_000 };
    this.#onError = options.onError ?? (() => {});
    this.#subscribers = new Subscribers((err) => this.#onError(err instanceof Error ? err : new Error(String(err))));
    this.#client = new FeedClient({
      apiUrl: options.apiUrl,
      accessToken: options.accessToken,
      tokens: options.tokens ?? null,
      pageLimit,
      longpollTimeoutSec,
      name: this.name,
      pacer: options.pacer ?? null,
      ...(options.maxRetryAfterMs !== undefined ? { maxRetryAfterMs: options.maxRetryAfterMs } : {}),
      onRetry: () => this.#retries++,
    });
    this.ready = new Promise<void>((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    this.ready.catch(() => {}); // closing before ready is not an unhandled rejection
  }

  /** Starts following the feed (idempotent); returns this. */
  start(): this {
    this.#loop ??= this.#run();
    return this;
  }

  get isReady(): boolean {
    return this.#isReady;
  }

  /** Entries held (the root excluded). */
  get size(): number {
    return this.#tree.size;
  }

  /** The entry at a path (any case; "" or "/" is the root), or null if it does not exist. */
  stat(path: string): CacheEntry | null {
    this.#assertReady();
    return this.#overlay.visible(normalizePath(path), this.#tree);
  }

  /** The entries of a folder, or null if the path is not a folder. Order is unspecified. */
  list(path: string): CacheEntry[] | null {
    this.#assertReady();
    return this.#overlay.children(normalizePath(path), this.#tree);
  }

  /** Watches a subtree ("" = everything); returns the function that stops watching. */
  subscribe(prefix: string, listener: ChangeListener): () => void {
    return this.#subscribers.add(normalizePath(prefix), listener);
  }

  /** This gateway wrote `metadata` (upload/commit, create_folder, copy result): show it now. */
  applyLocalWrite(metadata: RawMetadata): void {
    const node = nodeFrom(metadata);
    if (!node || node.pathLower === '') {
      if (metadata['.tag'] === 'deleted' && metadata.path_lower) this.applyLocalDelete(metadata.path_lower);
      return;
    }
    this.#ensureVisibleParents(node.pathLower, metadata.path_display ?? null);
    this.#writeOwn(node);
  }

  /** This gateway deleted `path` (and its subtree): hide it now. */
  applyLocalDelete(path: string): void {
    const pathLower = normalizePath(path);
    if (pathLower === '') return;
    const before = this.#overlay.visible(pathLower, this.#tree);
    this.#overlay.tombstone(pathLower, this.#requests);
    if (before) this.#subscribers.emit({ kind: 'delete', pathLower });
    this.#afterOwnWrite(); // a chain that starts after this write retires it
  }

  /** This gateway moved `fromPath` to `to` (move_v2's result): the subtree shows at its new place now. */
  applyLocalMove(fromPath: string, to: RawMetadata): void {
    const fromLower = normalizePath(fromPath);
    const root = nodeFrom(to);
    if (!root || fromLower === '') return;
    const moved: Node[] = [];
    if (root.tag === 'folder' && this.#isReady) {
      const stack = [fromLower];
      while (stack.length > 0) {
        const folder = stack.pop()!;
        for (const child of this.#overlay.children(folder, this.#tree) ?? []) {
          const pathLower = root.pathLower + child.pathLower.slice(fromLower.length);
          moved.push(child.tag === 'folder' ? folderNode(pathLower, child.name, child.id, new Set()) : { ...child, pathLower, children: null });
          if (child.tag === 'folder') stack.push(child.pathLower);
        }
      }
    }
    if (fromLower !== root.pathLower) this.applyLocalDelete(fromLower);
    this.applyLocalWrite(to);
    for (const node of moved) this.#writeOwn(node);
  }

  /** Asks the feed now instead of waiting for the longpoll (own writes ask lazily by themselves). */
  refresh(): void {
    if (this.#cursor === null) return; // a listing is under way: it ends with a chain of its own
    this.#needContinue = true;
    this.#continueUrgent = true;
    this.#pollAbort?.abort();
    this.#chainWake?.abort();
  }

  /**
   * After an own write: one more chain must follow (it retires the write). A parked longpoll is not
   * aborted — the write is a change of the feed, so it wakes the longpoll by itself, and an abort
   * costs a keep-alive connection per write — unless it is still parked OWN_WRITE_WAKE_MS later (the
   * write's change was already in the cursor it waits on, or the server wrote nothing).
   */
  #afterOwnWrite(): void {
    if (this.#cursor === null) return;
    this.#needContinue = true;
    this.#lastOwnWriteMs = Date.now();
    const parked = this.#pollAbort;
    if (!parked || this.#wakeTimer) return;
    this.#wakeTimer = setTimeout(() => {
      this.#wakeTimer = null;
      if (this.#pollAbort === parked && this.#needContinue) parked.abort();
    }, OWN_WRITE_WAKE_MS);
    this.#wakeTimer.unref();
  }

  stats(): DirectoryCacheStats {
    return {
      name: this.name,
      ready: this.#isReady,
      entries: this.#tree.size,
      pendingLocal: this.#overlay.size,
      subscribers: this.#subscribers.size,
      requests: this.#requests,
      retries: this.#retries,
      resets: this.#resets,
      lastError: this.#lastError?.message ?? null,
    };
  }

  /** Stops the feed loop (aborting the parked longpoll) and releases its connections. */
  async close(): Promise<void> {
    if (this.#abort.signal.aborted) return;
    this.#abort.abort();
    if (this.#wakeTimer) clearTimeout(this.#wakeTimer);
    this.#wakeTimer = null;
    this.#rejectReady(new DropftpError('DROPFTP_ERR_SHUTTING_DOWN', `directory cache ${this.name} closed`));
    await this.#loop;
    await this.#client.close();
  }

  /** The cache holds no state worth flushing: destroy is close. */
  destroy(): Promise<void> {
    return this.close();
  }

  /** @internal Tests only: point the feed at another cursor (e.g. one the server will `reset`). */
  _setCursorForTests(cursor: string): void {
    this.#cursor = cursor;
    this.refresh();
  }

  #assertReady(): void {
    if (!this.#isReady) throw new DropftpError('DROPFTP_ERR_INTERNAL', `directory cache ${this.name} is not ready; await cache.ready or ask Dropbox`);
  }

  #writeOwn(node: Node): void {
    const before = this.#overlay.visible(node.pathLower, this.#tree);
    this.#overlay.write(node, this.#requests);
    if (!sameEntry(before, node)) this.#subscribers.emit({ kind: 'upsert', pathLower: node.pathLower, entry: node });
    // The feed may already have brought this very revision (its longpoll woke before the commit's
    // reply came back): nothing is left to wait for.
    if (this.#overlay.confirmFile(node.pathLower, this.#tree)) {
      this.#lastOwnWriteMs = Date.now();
      return;
    }
    this.#afterOwnWrite(); // a chain that starts after this write retires it
  }

  /** Dropbox creates missing parents on upload: so does the overlay. */
  #ensureVisibleParents(pathLower: string, pathDisplay: string | null): void {
    const parent = parentOf(pathLower);
    if (parent === '') return;
    const seen = this.#overlay.visible(parent, this.#tree);
    if (seen?.tag === 'folder') return;
    const displayParent = pathDisplay && pathDisplay.length === pathLower.length ? parentOf(pathDisplay) : parent;
    this.#ensureVisibleParents(parent, displayParent);
    this.#writeOwn(folderNode(parent, displayParent.slice(displayParent.lastIndexOf('/') + 1), '', new Set()));
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    let failures = 0;
    while (!signal.aborted) {
      try {
        if (this.#cursor === null) await this.#rebuild(signal);
        else if (this.#needContinue) {
          if (await this.#spaceChain(signal)) await this.#catchUp(signal);
        } else await this.#poll(signal);
        failures = 0;
      } catch (caught) {
        const err = caught instanceof FeedError ? caught : feedError(caught, 'feed', signal);
        if (signal.aborted) break;
        if (err.kind === 'aborted') continue; // refresh() interrupted the longpoll
        this.#lastError = err;
        this.#onError(err);
        if (err.kind === 'reset') {
          this.#resets++;
          this.#cursor = null;
          this.#building = null;
          continue;
        }
        failures++;
        this.#retries++;
        const { minBackoffMs, maxBackoffMs } = this.#options;
        const backoffMs = err.kind === 'fatal' ? maxBackoffMs : Math.min(maxBackoffMs, minBackoffMs * 2 ** Math.min(failures - 1, 20));
        // A server's retry_after is honoured but never shortens our own backoff: a 429 that asks
        // for 1 ms again and again must not make a request loop.
        const serverMs = Number.isFinite(err.delayMs) ? err.delayMs : 0;
        const delayMs = Math.min(Math.max(serverMs, backoffMs * (0.8 + 0.4 * Math.random())), this.#client.maxServerDelayMs);
        await sleep(delayMs, undefined, { signal }).catch(() => {});
      }
    }
  }

  /** A full recursive listing into a fresh tree, swapped in when complete. */
  async #rebuild(signal: AbortSignal): Promise<void> {
    this.#building ??= { tree: new Tree(), cursor: null, chainStart: this.#requests + 1 };
    const b = this.#building;
    for (;;) {
      this.#requests++;
      const page = b.cursor === null ? await this.#client.listRoot(signal) : await this.#client.continue(b.cursor, signal);
      stalled(page, b.cursor);
      for (const raw of page.entries) b.tree.apply(raw);
      b.cursor = page.cursor;
      if (!page.hasMore) break;
    }
    this.#tree = b.tree;
    this.#cursor = b.cursor;
    this.#building = null;
    this.#needContinue = false;
    this.#chainStart = 0;
    if (!this.#isReady) {
      this.#overlay.dropBefore(b.chainStart);
      this.#isReady = true;
      this.#resolveReady();
    } else {
      this.#overlay.dropBefore(b.chainStart);
      this.#subscribers.emit({ kind: 'reset' });
    }
  }

  /** continue until has_more is false (one chain), then retire own writes the chain covered. */
  async #catchUp(signal: AbortSignal): Promise<void> {
    if (this.#chainStart === 0) this.#chainStart = this.#requests + 1;
    // Cleared before the chain: an own write made during it asks for one more chain.
    this.#needContinue = false;
    this.#continueUrgent = false;
    this.#chainNotBeforeMs = Date.now() + this.#options.minBackoffMs;
    try {
      for (;;) {
        this.#requests++;
        const page = await this.#client.continue(this.#cursor!, signal);
        stalled(page, this.#cursor);
        // Real changes: the next longpoll may start at once (more may follow a burst); only a
        // wake-up that brought nothing keeps the spacing.
        if (page.entries.length > 0) this.#spacingNotBeforeMs = 0;
        const changes: TreeChange[] = [];
        for (const raw of page.entries) this.#tree.apply(raw, changes);
        this.#cursor = page.cursor;
        for (const change of changes) {
          // An own file write whose revision the feed now shows is retired by it (same entry: no event).
          if (this.#overlay.confirmFile(change.pathLower, this.#tree)) continue;
          this.#announce(change.pathLower, change.node);
        }
        if (!page.hasMore) break;
      }
    } catch (err) {
      this.#needContinue = true; // resume the chain from the same cursor
      throw err;
    }
    const chainStart = this.#chainStart;
    this.#chainStart = 0;
    const paths = this.#overlay.pathsBefore(chainStart);
    if (paths.length === 0) return;
    const before = paths.map((p) => this.#overlay.visible(p, this.#tree));
    this.#overlay.dropBefore(chainStart);
    paths.forEach((p, i) => {
      const after = this.#overlay.visible(p, this.#tree);
      if (!sameEntry(before[i]!, after)) this.#announce(p, after);
    });
  }

  #announce(pathLower: string, entry: CacheEntry | null): void {
    if (this.#overlay.masks(pathLower)) return;
    this.#subscribers.emit(entry ? { kind: 'upsert', pathLower, entry } : { kind: 'delete', pathLower });
  }

  /**
   * Chains start at least minBackoffMs apart unless refresh() or a change made elsewhere asked:
   * during a burst of uploads every commit asks for one (itself and by waking the longpoll), and the
   * overlay already shows them (one continue per few files, not one per file). refresh() cuts the
   * wait short. Returns false when close() came meanwhile.
   */
  async #spaceChain(signal: AbortSignal): Promise<boolean> {
    const waitMs = this.#chainNotBeforeMs - Date.now();
    if (waitMs <= 0 || this.#continueUrgent) return true;
    const wake = new AbortController();
    this.#chainWake = wake;
    const onAbort = (): void => wake.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await sleep(waitMs, undefined, { signal: wake.signal }).catch(() => {});
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.#chainWake = null;
    }
    return !signal.aborted;
  }

  async #poll(signal: AbortSignal): Promise<void> {
    const pollAbort = new AbortController();
    this.#pollAbort = pollAbort;
    const onAbort = (): void => pollAbort.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      // The server's backoff applies to longpolls only: refresh() (an own write) cuts the wait
      // short for a continue, and close() ends it.
      const waitMs = Math.min(Math.max(this.#pollNotBeforeMs, this.#spacingNotBeforeMs) - Date.now(), this.#client.maxServerDelayMs);
      if (waitMs > 0) await sleep(waitMs, undefined, { signal: pollAbort.signal }).catch(() => {});
      if (this.#needContinue || pollAbort.signal.aborted) return; // refresh() came while we slept, or close()
      const startedMs = Date.now();
      const { changes, backoffMs } = await this.#client.longpoll(this.#cursor!, pollAbort.signal);
      // Longpolls start at least minBackoffMs apart unless the catch-up in between found changes:
      // a server that answers at once (no hold, no or a bad backoff, changes=true for ever with
      // nothing behind it) must not make a request loop, and real changes must not wait.
      this.#pollNotBeforeMs = Date.now() + backoffMs;
      this.#spacingNotBeforeMs = startedMs + this.#options.minBackoffMs;
      // A wake-up within minBackoffMs of an own write keeps the chain spacing: during a burst of
      // uploads every one of them wakes the longpoll, often before its own commit's reply is back
      // (so which wake-up an own write explains cannot be told exactly). Changes made elsewhere
      // while this gateway is quiet show at once; during its bursts at most minBackoffMs late.
      if (changes) {
        this.#needContinue = true;
        if (Date.now() - this.#lastOwnWriteMs > this.#options.minBackoffMs) this.#continueUrgent = true;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.#pollAbort = null;
    }
  }
}

/**
 * has_more with the very cursor that was sent: the cursor is the whole state of the chain, so the
 * next call would get the same answer — a request loop. A `retry` failure backs off instead.
 */
function stalled(page: FeedPage, sent: string | null): void {
  if (page.hasMore && sent !== null && page.cursor === sent) throw new FeedError('retry', 'list_folder/continue: has_more with an unchanged cursor');
}
