// Direct transfers against the local box's Dropbox-compatible HTTP API, the floor of the gateway's
// overhead: files/download for RETR; files/upload (or upload sessions above 128 MiB) for STOR.
// Runs in a load generator process. Invariants: one fresh TCP connection per request (like an FTP
// data connection); request bodies respect backpressure and count bytes when the kernel took them;
// a response is framed by its Content-Length (or, without one, by the connection's end).
// Why a client of our own on `net` and not node:http: the load generator's FTP client reads data
// connections straight off their sockets, and node:http's response parser copies every body chunk
// once more and runs a stream per response; on a 2-core machine the heavier client took the CPU
// from the server it measured (storm of 200 x 10 MiB: 1.69 CPU-seconds of load generator for the
// local box against 1.04 for pyftpdlib's same 2 GiB).

import { connect } from 'node:net';
import type { TransferMeter } from './meter.ts';
import { PERIOD_BYTES, READ_SINK, slice } from './pattern.ts';
import type { TransferPlan } from './ftp-transfer.ts';

export interface HttpTarget {
  url: string;
  accessToken: string;
}

const WRITE_CHUNK_BYTES = 256 * 1024;
const SESSION_CHUNK_BYTES = 128 * 1024 * 1024;
/** A response head longer than this is refused (the box's are a few hundred bytes). */
const MAX_HEAD_BYTES = 64 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n');

/** JSON for an HTTP header: non-ASCII escaped as \uXXXX, as the Dropbox API asks of Dropbox-API-Arg. */
function headerJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function call(
  target: HttpTarget,
  route: string,
  arg: unknown,
  body: { sessionId: number; fromByte: number; byteLength: number } | null,
  meter: TransferMeter,
  stallTimeoutMs: number,
): Promise<{ status: number; text: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const url = new URL(`${target.url}/2/${route}`);
    const head =
      `POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${target.accessToken}\r\n` +
      `Dropbox-API-Arg: ${headerJson(arg)}\r\nConnection: close\r\n` +
      (body ? `Content-Type: application/octet-stream\r\nContent-Length: ${body.byteLength}\r\n` : 'Content-Length: 0\r\n') +
      '\r\n';
    // Read into the process's READ_SINK (pattern.ts): a view of it is valid until the next read, so
    // what is kept (the head, a JSON body) is copied.
    const socket = connect({
      host: url.hostname,
      port: Number(url.port || 80),
      onread: {
        buffer: READ_SINK,
        callback: (n: number, buf: Uint8Array): boolean => {
          onRead(Buffer.from(buf.buffer, buf.byteOffset, n));
          return true;
        },
      },
    });
    let settled = false;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      reject(err);
    };
    const done = (status: number, text: string, bytes: number): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve({ status, text, bytes });
    };
    socket.setTimeout(stallTimeoutMs, () => fail(new Error(`HTTP ${route}: stalled ${stallTimeoutMs} ms`)));
    socket.on('error', (err) => fail(err));

    // The response: its head gathered whole, then its body counted (a download's) or kept (the rest).
    let headBuf: Buffer | null = Buffer.alloc(0);
    let status = 0;
    let length: number | null = null; // Content-Length; null: until the connection ends
    let download = false;
    let bytes = 0;
    const parts: Buffer[] = [];
    const bodyDone = (): void => done(status, download ? '' : Buffer.concat(parts).toString(), download ? bytes : 0);
    const onBody = (chunk: Buffer): void => {
      if (chunk.length === 0) return;
      const take = length === null ? chunk.length : Math.min(chunk.length, length - bytes);
      if (take < chunk.length) return fail(new Error(`HTTP ${route}: ${chunk.length - take} bytes past the Content-Length`));
      bytes += take;
      if (download) meter.add(take);
      else parts.push(Buffer.from(chunk)); // a copy: the view is read into again
      if (length !== null && bytes === length) bodyDone();
    };
    const onRead = (chunk: Buffer): void => {
      if (settled) return;
      if (headBuf === null) return onBody(chunk);
      headBuf = Buffer.concat([headBuf, chunk]);
      const end = headBuf.indexOf(HEAD_END);
      if (end < 0) {
        if (headBuf.length > MAX_HEAD_BYTES) fail(new Error(`HTTP ${route}: response head over ${MAX_HEAD_BYTES} bytes`));
        return;
      }
      const lines = headBuf.subarray(0, end).toString('latin1').split('\r\n');
      const rest = headBuf.subarray(end + HEAD_END.length);
      headBuf = null;
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
      if (!m) return fail(new Error(`HTTP ${route}: not an HTTP response: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`));
      status = Number(m[1]);
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        const name = line.slice(0, colon).trim().toLowerCase();
        const value = line.slice(colon + 1).trim();
        if (name === 'content-length') {
          if (!/^\d+$/.test(value)) return fail(new Error(`HTTP ${route}: bad Content-Length ${JSON.stringify(value)}`));
          length = Number(value);
        } else if (name === 'transfer-encoding' && value.toLowerCase() !== 'identity') {
          return fail(new Error(`HTTP ${route}: Transfer-Encoding ${value} is not read by the load generator`));
        }
      }
      download = route === 'files/download' && status === 200;
      if (length === 0) return done(status, '', 0);
      onBody(rest);
    };
    socket.on('end', () => {
      if (headBuf !== null) return fail(new Error(`HTTP ${route}: connection ended before the response head`));
      if (length !== null) return fail(new Error(`HTTP ${route}: connection ended after ${bytes} of ${length} body bytes`));
      bodyDone();
    });
    socket.on('close', () => fail(new Error(`HTTP ${route}: connection closed before the response ended`)));

    socket.write(head);
    if (!body) return;
    let position = 0;
    const step = (): void => {
      while (position < body.byteLength && !settled) {
        const n = Math.min(WRITE_CHUNK_BYTES, body.byteLength - position, PERIOD_BYTES);
        const chunk = slice(body.sessionId, body.fromByte + position, n);
        position += n;
        const more = socket.write(chunk, (err) => {
          if (!err) meter.add(n);
        });
        if (!more) {
          socket.once('drain', step);
          return;
        }
      }
    };
    step();
  });
}

function check(route: string, r: { status: number; text: string }): void {
  if (r.status !== 200) throw new Error(`HTTP ${route}: ${r.status} ${r.text.slice(0, 200)}`);
}

export async function httpTransfer(target: HttpTarget, plan: TransferPlan, meter: TransferMeter): Promise<void> {
  const path = plan.path.startsWith('/') ? plan.path : `/${plan.path}`;
  if (plan.op === 'RETR') {
    const r = await call(target, 'files/download', { path }, null, meter, plan.stallTimeoutMs);
    check('files/download', r);
    if (r.bytes !== plan.sizeBytes) throw new Error(`download: ${r.bytes} bytes, expected ${plan.sizeBytes}`);
    return;
  }
  const commit = { path, mode: 'overwrite', mute: true };
  if (plan.sizeBytes <= SESSION_CHUNK_BYTES) {
    const r = await call(target, 'files/upload', commit, { sessionId: plan.sessionId, fromByte: 0, byteLength: plan.sizeBytes }, meter, plan.stallTimeoutMs);
    check('files/upload', r);
    return;
  }
  const first = Math.min(SESSION_CHUNK_BYTES, plan.sizeBytes);
  const started = await call(target, 'files/upload_session/start', {}, { sessionId: plan.sessionId, fromByte: 0, byteLength: first }, meter, plan.stallTimeoutMs);
  check('upload_session/start', started);
  const sessionId = (JSON.parse(started.text) as { session_id: string }).session_id;
  let offset = first;
  while (plan.sizeBytes - offset > SESSION_CHUNK_BYTES) {
    const r = await call(target, 'files/upload_session/append_v2', { cursor: { session_id: sessionId, offset } }, { sessionId: plan.sessionId, fromByte: offset, byteLength: SESSION_CHUNK_BYTES }, meter, plan.stallTimeoutMs);
    check('upload_session/append_v2', r);
    offset += SESSION_CHUNK_BYTES;
  }
  const r = await call(
    target,
    'files/upload_session/finish',
    { cursor: { session_id: sessionId, offset }, commit },
    { sessionId: plan.sessionId, fromByte: offset, byteLength: plan.sizeBytes - offset },
    meter,
    plan.stallTimeoutMs,
  );
  check('upload_session/finish', r);
}
