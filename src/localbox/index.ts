// Embedding API of the local box: startLocalBox() runs the server in a child process (never on the
// caller's thread) and talks to it over its HTTP admin routes. Runs on the caller's thread.
// Invariants: the child's address comes over IPC; a forgotten box never keeps the caller alive (the
// child exits when the IPC channel closes); close() is graceful (SIGTERM), destroy(err) abortive (SIGKILL).

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { fromWire } from '../errors.ts';
import { resolveConfig } from './config.ts';
import type { CallsSnapshot } from './call-stats.ts';
import type { FaultSpec, LimitsSpec, LocalBox, LocalBoxAccount, LocalBoxOptions } from './types.ts';

export type { FaultRule, FaultSpec, LimitsSpec, LocalBox, LocalBoxAccount, LocalBoxOptions, RateLimit, WriteLock } from './types.ts';
export type { CallsSnapshot } from './call-stats.ts';
export { contentHash, contentHashOfBlocks, ContentHasher } from './content-hash.ts';

// Compiled (dist/, plain node) the child is child.js; from source (tests, under tsx) it is child.ts
// and needs the TypeScript loader, which a compiled server never loads.
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const CHILD = fileURLToPath(new URL(FROM_SOURCE ? './child.ts' : './child.js', import.meta.url));
const START_TIMEOUT_MS = 30_000;

// The box's heap is small (~10 MiB) while bodies stream through it at GB/s: with V8's default limits
// for so small an old generation, every few scavenges start a full mark-compact (about 25 per GiB
// moved, measured). A 64 MiB starting limit lets the old generation grow before it is marked; an
// idle box stays as small as before (the limit is not memory taken).
const HEAP_FLAGS = ['--initial-old-space-size=64'];

/**
 * The child's GLIBC_TUNABLES: the caller's, plus glibc.malloc.hugetlb=1 unless it names that tunable.
 * Node's HTTP parser hands every upload body chunk over in a fresh allocation, and downloads' read
 * buffers come and go with the number of readers: in 4 KiB pages that was ~25,000 page faults per
 * GiB the box moved (storm of 200 x 10 MiB over HTTP; perf -e page-faults: 46 % in the parser's
 * body copy, 28 % in reads into new buffers), each a trap into the hypervisor on the VMs we run on.
 * With glibc asking for transparent huge pages on its heaps (THP's madvise mode, Linux's default;
 * nothing changes where THP is off, and other C libraries ignore the variable) the same storm took
 * 4,400-8,000, and the box 1.81-1.98 CPU-s/GiB against 1.94-2.57 (3 alternating pairs), peak RSS
 * 282-322 against 284-291 MiB.
 */
export function childTunables(current: string | undefined): string {
  const parts = (current ?? '').split(':').filter((p) => p !== '');
  if (parts.some((p) => p.startsWith('glibc.malloc.hugetlb='))) return parts.join(':');
  return [...parts, 'glibc.malloc.hugetlb=1'].join(':');
}

function childExecArgv(): string[] {
  // LOCALBOX_NODE_FLAGS='--flag ...': node or V8 flags for the child alone (--trace-gc, --perf-basic-prof).
  const extra = (process.env.LOCALBOX_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  // tsx resolved from this file, not from the caller's working directory.
  return FROM_SOURCE ? [...HEAP_FLAGS, ...extra, '--import', import.meta.resolve('tsx')] : [...HEAP_FLAGS, ...extra];
}

export interface StartExtras {
  /** How often the child collects unreferenced blocks (default 10 min; 0 = only at start-up). */
  gcIntervalMs?: number;
  /** A request body idle this long ends its connection (default 10 min; tests set less). */
  bodyIdleTimeoutMs?: number;
}

export async function startLocalBox(options: LocalBoxOptions, extras: StartExtras = {}): Promise<LocalBox> {
  const config = resolveConfig(options, extras);
  const child = spawn(process.execPath, [...childExecArgv(), CHILD], {
    env: { ...process.env, GLIBC_TUNABLES: childTunables(process.env.GLIBC_TUNABLES), LOCALBOX_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error('localbox: the child did not start in time')), START_TIMEOUT_MS);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(err);
    };
    child.once('error', fail);
    child.once('exit', (code, signal) => fail(new Error(`localbox: the child exited during start-up (code ${code}, signal ${signal})`)));
    child.on('message', (m: { type?: string; url?: string; message?: string; code?: string }) => {
      if (m?.type === 'listening' && m.url) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        child.removeAllListeners('error');
        resolve(m.url);
      } else if (m?.type === 'error') fail(m.code ? fromWire({ code: m.code, message: `localbox: ${m.message}` }) : new Error(`localbox: ${m.message}`));
    });
  });
  child.on('error', () => {});
  // Do not keep the caller alive for the child's sake; the child exits when the channel closes.
  child.unref();
  (child as ChildProcess & { channel?: { unref(): void } }).channel?.unref();
  return new Handle(url, config.adminToken, child);
}

class Handle implements LocalBox {
  private exited: Promise<void>;

  constructor(
    readonly url: string,
    readonly adminToken: string,
    private readonly child: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  private async admin<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.url}/admin/${path}`, {
      method,
      headers: { Authorization: `Bearer ${this.adminToken}`, 'Content-Type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`localbox admin ${path}: HTTP ${res.status}: ${text}`);
    return JSON.parse(text) as T;
  }

  createAccount(name: string): Promise<LocalBoxAccount> {
    return this.admin('POST', 'accounts', { name });
  }

  async setFaults(spec: FaultSpec): Promise<void> {
    await this.admin('POST', 'faults', spec);
  }

  async faultCounts(): Promise<Record<string, number>> {
    return (await this.admin<{ counts: Record<string, number> }>('GET', 'faults')).counts;
  }

  /** Replaces Dropbox's limits at run time (a missing key keeps its value, null turns it off). */
  setLimits(limits: NonNullable<LocalBoxOptions['limits']>): Promise<LimitsSpec> {
    return this.admin('POST', 'limits', limits);
  }

  /** The call counters (GET /admin/calls). */
  calls(): Promise<CallsSnapshot> {
    return this.admin('GET', 'calls');
  }

  /** Extra admin calls (not part of the LocalBox contract): stats, gc, token expiry, auth codes. */
  adminCall<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    return this.admin(method, path, body);
  }

  /** Graceful: SIGTERM (the child finishes its requests and closes its database), SIGKILL after 10 s. */
  async close(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
      await this.exited;
      clearTimeout(timer);
    }
  }

  /** Abortive: SIGKILL now (requests in flight fail; committed data is safe in its database); resolves once the child is gone. */
  async destroy(_err?: Error): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** destroy() without waiting (crash tests). */
  kill(): void {
    void this.destroy();
  }

  /** Resolves when the child has exited (after close() or kill()). */
  waitExit(): Promise<void> {
    return this.exited;
  }
}

/** The admin helpers of a box started by startLocalBox (for tests and tools). */
export function adminOf(box: LocalBox): {
  adminCall<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T>;
  setLimits(limits: NonNullable<LocalBoxOptions['limits']>): Promise<LimitsSpec>;
  calls(): Promise<CallsSnapshot>;
  waitExit(): Promise<void>;
} {
  if (!(box instanceof Handle)) throw new TypeError('not a local box handle');
  return box;
}
