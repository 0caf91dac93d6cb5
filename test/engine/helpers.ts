// Shared fixtures of the engine tests: a real local box in a child process with one account, an
// engine bound to it, deterministic file contents, and helpers to seed, read and compare files.
// Runs on the test's main thread. Invariant: everything started here is stopped by stop().

import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { request } from 'undici';
import { startLocalBox } from '../../src/localbox/index.ts';
import type { LocalBox, LocalBoxAccount } from '../../src/localbox/index.ts';
import { TransferEngine } from '../../src/transfer/index.ts';
import type { EngineOptions } from '../../src/transfer/index.ts';

export interface Fixture {
  box: LocalBox;
  account: LocalBoxAccount;
  engine: TransferEngine;
  dataDir: string;
  stop(): Promise<void>;
}

export async function startFixture(engineOptions: EngineOptions = {}, accountName = 'alice'): Promise<Fixture> {
  const dataDir = mkdtempSync(join(tmpdir(), 'dropftp-engine-'));
  const box = await startLocalBox({ dataDir });
  const account = await box.createAccount(accountName);
  const engine = await TransferEngine.start({ workers: 2, ...engineOptions });
  engine.setAccount({ name: accountName, apiUrl: box.url, contentUrl: box.url, accessToken: account.accessToken });
  return {
    box,
    account,
    engine,
    dataDir,
    async stop() {
      await engine.destroy().catch(() => {});
      await box.close().catch(() => box.kill());
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Runs `body` with an engine on the main thread (no workers) bound to the fixture's account whose
 * spool folder holds `/dev/full` under the name of the first upload's first spool file (thread key
 * 1, task id 1: `1-1-0.spool`), so that the first spool write fails with ENOSPC; the engine's
 * warnings are collected for `body`. Linux only: where there is no /dev/full, `body` does not run.
 * The engine and the folder are removed afterwards.
 */
export async function withFullDiskSpool(
  fx: Fixture,
  appendMemoryBytes: number,
  body: (engine: TransferEngine, spoolDir: string, warnings: { obj: Record<string, unknown>; msg: string }[]) => Promise<void>,
): Promise<void> {
  if (!existsSync('/dev/full')) return;
  const dir = mkdtempSync(join(tmpdir(), 'dropftp-spool-full-'));
  const warnings: { obj: Record<string, unknown>; msg: string }[] = [];
  const log = { warn: (obj: object, msg: string) => void warnings.push({ obj: obj as Record<string, unknown>, msg }), info: () => {} };
  const engine = await TransferEngine.start({ onlyMainThread: true, spoolDir: dir, appendMemoryBytes, spoolBytes: 64 * 1024 * 1024, log });
  try {
    engine.setAccount({ name: 'alice', apiUrl: fx.box.url, contentUrl: fx.box.url, accessToken: fx.account.accessToken });
    symlinkSync('/dev/full', join(dir, '1-1-0.spool'));
    await body(engine, dir, warnings);
  } finally {
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A deterministic pseudo-random pool; file contents are slices of it at different offsets. */
export function makePool(bytes: number, seed = 1): Buffer {
  const buf = Buffer.allocUnsafe(bytes);
  let x = seed >>> 0 || 1;
  for (let i = 0; i + 4 <= bytes; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf.writeUInt32LE(x >>> 0, i);
  }
  return buf;
}

/** Content of file number i of `size` bytes: a window of the pool (wrapping), unique per i. */
export function contentOf(pool: Buffer, i: number, size: number): Buffer {
  const start = (i * 7919 * 4099) % Math.max(1, pool.length - size);
  return pool.subarray(start, start + size);
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Stores a file straight through the box's files/upload (≤ 150 MiB), bypassing the engine. */
export async function seed(box: LocalBox, token: string, path: string, data: Buffer): Promise<void> {
  const res = await request(`${box.url}/2/files/upload`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'dropbox-api-arg': JSON.stringify({ path, mode: 'overwrite' }),
      'content-type': 'application/octet-stream',
    },
    body: data,
  });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`seed ${path}: ${res.statusCode} ${text}`);
}

/** Reads a file straight from the box (bypassing the engine); null when it does not exist. */
export async function fetchFile(box: LocalBox, token: string, path: string): Promise<Buffer | null> {
  const res = await request(`${box.url}/2/files/download`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'dropbox-api-arg': JSON.stringify({ path }) },
  });
  const body = Buffer.from(await res.body.arrayBuffer());
  if (res.statusCode === 409) return null;
  if (res.statusCode !== 200) throw new Error(`fetch ${path}: ${res.statusCode} ${body.toString()}`);
  return body;
}

/** Drains a Readable; resolves its sha256 and length, or rejects with its error. */
export function drain(stream: Readable, onChunk?: (n: number) => void): Promise<{ sha: string; length: number }> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    let length = 0;
    stream.on('data', (c: Buffer) => {
      h.update(c);
      length += c.length;
      onChunk?.(c.length);
    });
    stream.once('end', () => resolve({ sha: h.digest('hex'), length }));
    stream.once('error', reject);
  });
}

/** Writes `data` in pieces of `pieceBytes`, honouring backpressure, and leaves the stream open. */
export async function writeAll(stream: Writable, data: Buffer, pieceBytes = 64 * 1024): Promise<void> {
  for (let off = 0; off < data.length; off += pieceBytes) {
    if (!stream.write(data.subarray(off, off + pieceBytes))) await new Promise((r) => stream.once('drain', r));
  }
}

/**
 * Node's own: resolves on a Writable's 'finish' (an upload: committed), rejects on its 'error' (or a
 * close before either).
 */
export { finished };

/** Writes `data` in pieces of `pieceBytes`, honouring backpressure, then ends; resolves on 'finish'. */
export function feed(stream: Writable, data: Buffer, pieceBytes = 256 * 1024): Promise<void> {
  const done = finished(stream);
  let off = 0;
  const pump = (): void => {
    while (off < data.length) {
      const piece = data.subarray(off, Math.min(data.length, off + pieceBytes));
      off += piece.length;
      if (!stream.write(piece)) {
        stream.once('drain', pump);
        return;
      }
    }
    stream.end();
  };
  pump();
  return done;
}

export const KiB = 1024;
export const MiB = 1024 * 1024;

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
