// The soak run's FTP operations (STOR, RETR, LIST, each whole, ABORted or dropped mid-transfer) over
// raw sockets, and an independent check of the store through the local box's HTTP API (content_hash
// from get_metadata, retried through injected faults; corrupted bytes only ever hit download bodies).
// Runs on the soak driver's main thread. Invariant: an operation never throws; it returns what the
// server did (a reply, a close, or nothing within the watchdog), and the caller judges it.

import { type Socket } from 'node:net';
import { RawFtp, openData, readAll, type Reply } from '../test/ftp/helpers/raw-client.ts';
import { contentHash } from '../src/localbox/content-hash.ts';

export type Outcome =
  | { kind: 'ok'; bytes?: Buffer } // 226 (RETR: with the bytes received)
  | { kind: 'error'; code: number; text: string } // a clean FTP error reply
  | { kind: 'stopped' } // our ABOR or drop took effect, replies (if any) well formed
  | { kind: 'stuck'; what: string } // no reply within the watchdog, or a malformed reply: unclean
  | { kind: 'closed'; what: string }; // the server closed the control connection without a reply

export const OP_TIMEOUT_MS = 120_000;

async function dataChannel(c: RawFtp): Promise<Socket | Outcome> {
  c.send('PASV');
  const reply = await c.readOrNull(OP_TIMEOUT_MS);
  if (!reply) return c.closed ? { kind: 'closed', what: 'PASV' } : { kind: 'stuck', what: 'PASV' };
  const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(reply.text);
  if (reply.code !== 227 || !m) return { kind: 'error', code: reply.code, text: reply.text };
  return openData(Number(m[5]) * 256 + Number(m[6])).catch((err: Error) => ({ kind: 'error', code: 0, text: `data connect: ${err.message}` }) as Outcome);
}

async function finalReply(c: RawFtp, what: string): Promise<Reply | Outcome> {
  const reply = await c.readOrNull(OP_TIMEOUT_MS);
  if (!reply) return c.closed ? { kind: 'closed', what } : { kind: 'stuck', what };
  return reply;
}

function isOutcome(x: unknown): x is Outcome {
  return typeof x === 'object' && x !== null && 'kind' in x;
}

function writeAll(socket: Socket, bytes: Buffer, untilBytes: number): Promise<void> {
  return new Promise((resolve) => {
    let at = 0;
    const step = (): void => {
      while (at < untilBytes) {
        const end = Math.min(untilBytes, at + 64 * 1024);
        const more = socket.write(bytes.subarray(at, end));
        at = end;
        if (!more) return void socket.once('drain', step);
      }
      resolve();
    };
    socket.once('close', () => resolve());
    socket.on('error', () => resolve());
    step();
  });
}

/** After our ABOR: a NOOP marker must be answered; every reply before it must be well formed. */
async function afterAbort(c: RawFtp): Promise<Outcome> {
  c.send('NOOP');
  for (;;) {
    const reply = await c.readOrNull(OP_TIMEOUT_MS);
    if (!reply) return c.closed ? { kind: 'stopped' } : { kind: 'stuck', what: 'ABOR: no reply to the NOOP after it' };
    if (!/^[1-5]\d\d$/.test(String(reply.code))) return { kind: 'stuck', what: `malformed reply ${reply.text}` };
    if (reply.code === 200) return { kind: 'stopped' };
  }
}

export type Mode = 'whole' | 'abort' | 'drop';

export async function stor(c: RawFtp, path: string, bytes: Buffer, mode: Mode): Promise<Outcome> {
  const data = await dataChannel(c);
  if (isOutcome(data)) return data;
  data.on('error', () => {});
  c.send(`STOR ${path}`);
  const first = await finalReply(c, 'STOR 150');
  if (isOutcome(first)) return data.destroy(), first;
  if (first.code >= 400) return data.destroy(), { kind: 'error', code: first.code, text: first.text };
  if (mode === 'whole') {
    await writeAll(data, bytes, bytes.length);
    data.end();
    const final = await finalReply(c, 'STOR 226');
    data.destroy();
    if (isOutcome(final)) return final;
    return final.code === 226 ? { kind: 'ok' } : { kind: 'error', code: final.code, text: final.text };
  }
  await writeAll(data, bytes, Math.floor(bytes.length / 2));
  if (mode === 'drop') {
    c.socket.resetAndDestroy();
    data.resetAndDestroy();
    return { kind: 'stopped' };
  }
  c.send('ABOR');
  const out = await afterAbort(c);
  data.destroy();
  return out;
}

export async function retr(c: RawFtp, path: string, mode: Mode): Promise<Outcome> {
  const data = await dataChannel(c);
  if (isOutcome(data)) return data;
  data.on('error', () => {});
  const received = mode === 'whole' ? readAll(data) : null;
  c.send(`RETR ${path}`);
  const first = await finalReply(c, 'RETR 150');
  if (isOutcome(first)) return data.destroy(), first;
  if (first.code >= 400) return data.destroy(), { kind: 'error', code: first.code, text: first.text };
  if (received) {
    const bytes = await received;
    const final = await finalReply(c, 'RETR 226');
    if (isOutcome(final)) return final;
    return final.code === 226 ? { kind: 'ok', bytes } : { kind: 'error', code: final.code, text: final.text };
  }
  await new Promise<void>((resolve) => {
    data.once('data', () => resolve());
    data.once('close', () => resolve());
    setTimeout(resolve, 2000).unref();
  });
  if (mode === 'drop') {
    data.resetAndDestroy();
    c.socket.resetAndDestroy();
    return { kind: 'stopped' };
  }
  data.pause(); // a slow reader while the ABOR goes in
  c.send('ABOR');
  const out = await afterAbort(c);
  data.destroy();
  return out;
}

export async function list(c: RawFtp, path: string): Promise<Outcome & { text?: string }> {
  const data = await dataChannel(c);
  if (isOutcome(data)) return data;
  const received = readAll(data).catch(() => Buffer.alloc(0));
  c.send(`LIST ${path}`);
  const first = await finalReply(c, 'LIST 150');
  if (isOutcome(first)) return data.destroy(), first;
  if (first.code >= 400) return data.destroy(), { kind: 'error', code: first.code, text: first.text };
  const bytes = await received;
  const final = await finalReply(c, 'LIST 226');
  if (isOutcome(final)) return final;
  return final.code === 226 ? { kind: 'ok', bytes, text: bytes.toString('utf8') } : { kind: 'error', code: final.code, text: final.text };
}

/** Reads the store straight from the local box (never through dropftp), retrying injected faults. */
export class StoreCheck {
  constructor(
    readonly url: string,
    private accessToken: string,
  ) {}

  /** content_hash of the committed file, 'absent' when none; null when the box kept failing. */
  async contentHash(path: string): Promise<string | 'absent' | null> {
    for (let attempt = 0; attempt < 30; attempt++) {
      try {
        const res = await fetch(`${this.url}/2/files/get_metadata`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${this.accessToken}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ path }),
          signal: AbortSignal.timeout(30_000),
        });
        const text = await res.text();
        if (res.status === 200) return (JSON.parse(text) as { content_hash: string }).content_hash;
        if (res.status === 409 && text.includes('not_found')) return 'absent';
      } catch {
        /* reset or timeout: retry */
      }
      await new Promise((r) => setTimeout(r, 200 + attempt * 100));
    }
    return null;
  }

  /** content_hash computed here over the whole downloaded bytes (faults off), or 'absent'. */
  async downloadedHash(path: string): Promise<string | 'absent'> {
    const res = await fetch(`${this.url}/2/files/download`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${this.accessToken}`, 'Dropbox-API-Arg': JSON.stringify({ path }) },
    });
    const body = Buffer.from(await res.arrayBuffer());
    if (res.status === 409) return 'absent';
    if (!res.ok) throw new Error(`download ${path}: HTTP ${res.status} ${body.toString()}`);
    return contentHash(body);
  }
}
