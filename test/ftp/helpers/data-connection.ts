// Data connections for tests: open a passive one (plain, or TLS resuming a session), listen for an
// active one (PORT), read one to its end, and the PASV + transfer-command round trips built on them
// (download, upload). Test code only; main thread. Each socket belongs to the caller, who ends or destroys it.

import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { RawFtp, Reply } from './raw-client.ts';
import { handshake, secureClient } from './tls-client.ts';

export function openData(port: number, host = '127.0.0.1', localAddress?: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host, localAddress });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

export interface SecureDataOptions {
  host?: string;
  /** Source address of the data connection (127.0.0.x). */
  localAddress?: string;
  /** A TLS session to offer (RawFtp's `session`); `isSessionReused()` tells whether it was resumed. */
  session?: Buffer | null;
}

/** A PROT P data connection: TCP to `port`, then a TLS handshake (done when this resolves). */
export async function openSecureData(port: number, options: SecureDataOptions = {}): Promise<TLSSocket> {
  const raw = await openData(port, options.host, options.localAddress);
  const secure = secureClient(raw, options.session);
  await handshake(secure);
  return secure;
}

/** Reads a data socket to its end. */
export function readAll(socket: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
    socket.once('close', () => resolve(Buffer.concat(chunks))); // after 'end' this is a no-op
  });
}

export interface ActiveDataOptions {
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** PROT P: be the TLS client on the accepted socket (RFC 4217 9: the server end is the TLS server). */
  secure?: boolean;
  /** With `secure`: a TLS session to offer (RawFtp's `session`). */
  session?: Buffer | null;
}

export interface ActiveDataListener {
  port: number;
  /** The server's one data connection (TLS started, not awaited), or null when closed before it came. */
  accepted: Promise<Socket | null>;
  /** Stops listening; an accepted socket stays the caller's. */
  close(): void;
}

/** For PORT/EPRT: listens on an ephemeral port for the server's data connection and accepts only the first. */
export async function listenData(options: ActiveDataOptions = {}): Promise<ActiveDataListener> {
  let settle: (socket: Socket | null) => void = () => {};
  const accepted = new Promise<Socket | null>((resolve) => (settle = resolve));
  const server = createServer((raw) => {
    server.close();
    raw.on('error', () => {});
    settle(options.secure ? secureClient(raw, options.session) : raw);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, options.host ?? '127.0.0.1', resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    accepted,
    close: () => {
      server.close();
      settle(null);
    },
  };
}

/** Reads a data socket until it closes, for whatever reason: a refused connection may end in a reset or a TLS error. Never rejects. */
export function readUntilClose(socket: Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('error', () => {});
    if (socket.closed) return resolve(Buffer.alloc(0));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('close', () => resolve(Buffer.concat(chunks)));
  });
}

/** PASV + a transfer command that reads: returns the final reply and the bytes received. */
export async function download(c: RawFtp, line: string): Promise<{ first: Reply; final: Reply; data: Buffer }> {
  const { port } = await c.pasv();
  const data = await openData(port);
  const received = readAll(data);
  c.send(line);
  const first = await c.read();
  if (first.code >= 400) {
    data.destroy();
    return { first, final: first, data: Buffer.alloc(0) };
  }
  const bytes = await received;
  const final = await c.read(30_000);
  return { first, final, data: bytes };
}

/** PASV + a transfer command that writes `bytes`, ending the data connection cleanly. */
export async function upload(c: RawFtp, line: string, bytes: Buffer): Promise<{ first: Reply; final: Reply }> {
  const { port } = await c.pasv();
  const data = await openData(port);
  c.send(line);
  const first = await c.read();
  if (first.code >= 400) {
    data.destroy();
    return { first, final: first };
  }
  data.end(bytes);
  const final = await c.read(60_000);
  data.destroy();
  return { first, final };
}

/**
 * PASV, then an upload command whose 150 it waits for, then `bytes` with a clean end of the data
 * connection, without waiting for the final reply: for tests that act while the server commits.
 */
export async function sendUpload(c: RawFtp, line: string, bytes: Buffer): Promise<{ first: Reply; data: Socket }> {
  const { port } = await c.pasv();
  const data = await openData(port);
  c.send(line);
  const first = await c.read();
  if (first.code !== 150) {
    data.destroy();
    throw new Error(`${line}: ${first.text}`);
  }
  data.end(bytes);
  return { first, data };
}

/**
 * A STOR that sends the first `sent` bytes of `bytes`, lets the server take them in (`settleMs`),
 * then resets its data connection; asserts the 150 and the 426. When a reset arrives while data
 * still waits in the server's receive queue, libuv can report a clean EOF instead of ECONNRESET.
 */
export async function resetStor(c: RawFtp, path: string, bytes: Buffer, sent: number, settleMs = 1500): Promise<void> {
  const { port } = await c.pasv();
  const data = await openData(port);
  c.send(`STOR ${path}`);
  const first = await c.read();
  if (first.code !== 150) throw new Error(`STOR ${path}: ${first.text}`);
  await new Promise<void>((resolve, reject) => data.write(bytes.subarray(0, sent), (err) => (err ? reject(err) : resolve())));
  await new Promise((resolve) => setTimeout(resolve, settleMs));
  data.resetAndDestroy();
  const final = await c.read(10_000);
  if (final.code !== 426) throw new Error(`STOR ${path} reset: ${final.text}`);
}
