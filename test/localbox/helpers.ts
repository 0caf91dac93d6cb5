// Test helpers for the local box: a box in a temp dir, an official SDK client pointed at it (custom
// fetch, reference §7), and raw HTTP calls. Runs on the test's main thread.

import { Dropbox } from 'dropbox';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminOf, startLocalBox, type LocalBox, type LocalBoxAccount, type LocalBoxOptions, type StartExtras } from '../../src/localbox/index.ts';

export interface TestBox {
  box: LocalBox;
  dir: string;
  admin<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T>;
  sdk(account: LocalBoxAccount): Dropbox;
  call(route: string, token: string | null, init?: RequestInit & { arg?: unknown; json?: unknown }): Promise<Response>;
  cleanup(): Promise<void>;
}

export async function makeBox(options: Partial<LocalBoxOptions> = {}, extras: StartExtras = {}, dir?: string): Promise<TestBox> {
  const dataDir = dir ?? mkdtempSync(join(tmpdir(), 'localbox-test-'));
  const box = await startLocalBox({ dataDir, ...options }, extras);
  return wrap(box, dataDir);
}

export function wrap(box: LocalBox, dataDir: string): TestBox {
  return {
    box,
    dir: dataDir,
    admin: (m, p, b) => adminOf(box).adminCall(m, p, b),
    sdk: (account) =>
      new Dropbox({
        accessToken: account.accessToken,
        fetch: (url: string, init: RequestInit) => fetch(url.replace(/^https:\/\/[^/]+/, box.url), init),
      } as ConstructorParameters<typeof Dropbox>[0]),
    call: (route, token, init = {}) => {
      const headers = new Headers(init.headers);
      if (token !== null) headers.set('Authorization', `Bearer ${token}`);
      let body = init.body;
      if (init.json !== undefined) {
        headers.set('Content-Type', 'application/json');
        body = JSON.stringify(init.json);
      }
      if (init.arg !== undefined) headers.set('Dropbox-API-Arg', asciiJson(init.arg));
      const { arg: _a, json: _j, ...rest } = init;
      return fetch(`${box.url}/2/${route}`, { method: 'POST', ...rest, headers, body: body ?? null, ...(body instanceof ReadableStream ? { duplex: 'half' } : {}) } as RequestInit);
    },
    cleanup: async () => {
      await box.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export function asciiJson(v: unknown): string {
  return JSON.stringify(v).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Deterministic pseudo-random bytes (xorshift), so tests need no fixtures. */
export function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  for (; i < n; i++) b[i] = i & 0xff;
  return b;
}

/** The SDK's error object (DropboxResponseError) as { status, error }. */
export async function sdkError(p: Promise<unknown>): Promise<{ status: number; error: any; headers: any }> {
  try {
    await p;
  } catch (e) {
    const err = e as { status: number; error: unknown; headers: unknown };
    return { status: err.status, error: err.error, headers: err.headers };
  }
  throw new Error('expected the call to fail');
}
