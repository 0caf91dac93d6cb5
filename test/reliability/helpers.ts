// Shared helpers of the reliability suites: a whole dropftp stack in-process (or as a `dropftp serve`
// child), an independent view of the store straight over the local box's HTTP API (never through
// dropftp), a seeded PRNG, and resource counters. Test code only.
// Invariant: everything verified here is read back from the local box, so a bug in dropftp's read
// path cannot hide a bug in its write path.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { RawFtp } from '../ftp/helpers/raw-client.ts';

export const KiB = 1024;
export const MiB = 1024 * 1024;
export const LONG = process.env.RELIABILITY_LONG === '1';
export const SEED = Number(process.env.RELIABILITY_SEED ?? 20240917);

/** Every random choice in these suites comes from one of these (src/util/prng.ts). */
import { mulberry32 as prng } from '../../src/util/prng.ts';
export { prng };

export function pick<T>(rnd: () => number, items: readonly T[]): T {
  return items[Math.floor(rnd() * items.length)]!;
}

/** Deterministic bytes (fast: a repeated seeded 64 KiB pattern with the offset mixed in). */
export function pattern(byteLength: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(byteLength);
  const rnd = prng(seed);
  const block = Buffer.allocUnsafe(Math.min(byteLength, 64 * KiB));
  for (let i = 0; i < block.length; i++) block[i] = Math.floor(rnd() * 256);
  for (let off = 0; off < byteLength; off += block.length) {
    block.copy(out, off, 0, Math.min(block.length, byteLength - off));
    if (off + 4 <= byteLength) out.writeUInt32LE(off >>> 0, off); // no two blocks alike
  }
  return out;
}

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A client of the local box's Dropbox HTTP API, holding a fresh access token of the data dir's account. */
export class BoxView {
  constructor(
    readonly url: string,
    readonly accessToken: string,
  ) {}

  static async open(url: string, dataDir: string, accountName = 'local'): Promise<BoxView> {
    const stored = parse(await readFile(join(dataDir, 'accounts.yaml'), 'utf8')) as Record<string, { refreshToken: string; appKey: string; appSecret: string }>;
    const account = stored[accountName];
    if (!account) throw new Error(`no account ${accountName} in ${dataDir}/accounts.yaml`);
    const res = await fetch(`${url}/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: account.refreshToken, client_id: account.appKey, client_secret: account.appSecret }),
    });
    if (!res.ok) throw new Error(`token: HTTP ${res.status} ${await res.text()}`);
    return new BoxView(url, ((await res.json()) as { access_token: string }).access_token);
  }

  /** The committed bytes of a file, or null when it does not exist. */
  async download(path: string): Promise<Buffer | null> {
    const res = await fetch(`${this.url}/2/files/download`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${this.accessToken}`, 'Dropbox-API-Arg': JSON.stringify({ path }) },
    });
    if (res.status === 409) {
      await res.arrayBuffer();
      return null;
    }
    if (!res.ok) throw new Error(`download ${path}: HTTP ${res.status} ${await res.text()}`);
    return Buffer.from(await res.arrayBuffer());
  }

  async rpc<T>(route: string, body: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(`${this.url}/2/${route}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${this.accessToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* keep the text */
    }
    return { status: res.status, body: parsed as T };
  }

  /** Every file under the root: path_lower → { size, content_hash }. */
  async listFiles(): Promise<Map<string, { size: number; contentHash: string }>> {
    type Entry = { '.tag': string; path_lower: string; size?: number; content_hash?: string };
    type Page = { entries: Entry[]; cursor: string; has_more: boolean };
    const out = new Map<string, { size: number; contentHash: string }>();
    let page = await this.rpc<Page>('files/list_folder', { path: '', recursive: true, limit: 2000 });
    for (;;) {
      if (page.status !== 200) throw new Error(`list_folder: HTTP ${page.status} ${JSON.stringify(page.body)}`);
      for (const e of page.body.entries) if (e['.tag'] === 'file') out.set(e.path_lower, { size: e.size!, contentHash: e.content_hash! });
      if (!page.body.has_more) return out;
      page = await this.rpc<Page>('files/list_folder/continue', { cursor: page.body.cursor });
    }
  }
}

/** Open file descriptors of this process (sockets, pipes, files). */
export async function openFds(): Promise<number> {
  const { readdir } = await import('node:fs/promises');
  return (await readdir('/proc/self/fd')).length;
}

/** What each open fd is (socket:[inode], pipe:[..], a path), counted by kind: for leak messages. */
export async function fdKinds(): Promise<Record<string, number>> {
  const { readdir, readlink } = await import('node:fs/promises');
  const out: Record<string, number> = {};
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => 'gone');
    const kind = target.replace(/\[\d+\]$/, '').replace(/^\/.*/, 'file');
    out[kind] = (out[kind] ?? 0) + 1;
  }
  return out;
}

import { sleep } from '../helpers/wait.ts';
export { sleep, tcpHandles, until } from '../helpers/wait.ts';

/** Forces full collections so that heap numbers compare (works without --expose-gc). */
export async function settleGc(): Promise<void> {
  const { setFlagsFromString } = await import('node:v8');
  const { runInNewContext } = await import('node:vm');
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  for (let i = 0; i < 3; i++) {
    gc();
    await sleep(30);
  }
}

/** Writes a file straight into the store (files/upload, overwrite), bypassing dropftp. */
export async function boxUpload(view: BoxView, path: string, bytes: Buffer): Promise<void> {
  const res = await fetch(`${view.url}/2/files/upload`, {
    method: 'POST',
    headers: {
      Authorization: `Bearer ${view.accessToken}`,
      'Content-Type': 'application/octet-stream',
      'Dropbox-API-Arg': JSON.stringify({ path, mode: 'overwrite' }),
    },
    body: bytes,
  });
  if (!res.ok) throw new Error(`upload ${path}: HTTP ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
}

/**
 * A RawFtp client whose connection comes from `localAddress` (another loopback address: a different
 * client for per-address limits). Returns null, with the greeting or nothing, when refused.
 */
export async function rawFtpFrom(port: number, localAddress: string): Promise<{ client: RawFtp | null; greeting: string }> {
  let opened: Awaited<ReturnType<typeof RawFtp.open>>;
  try {
    opened = await RawFtp.open({ port, localAddress });
  } catch {
    return { client: null, greeting: '' }; // the connect itself failed
  }
  const { ftp: client, first: greeting } = opened;
  if (!greeting || greeting.code !== 220) {
    client.close();
    return { client: null, greeting: greeting?.text ?? '' };
  }
  return { client, greeting: greeting.text };
}
