// Direct transfers against the local box's Dropbox-compatible HTTP API, the floor of the gateway's
// overhead: files/download for RETR; files/upload (or upload sessions above 128 MiB) for STOR.
// Runs in a load generator process. Invariants: one fresh TCP connection per request (like an FTP
// data connection); request bodies respect backpressure and count bytes when the kernel took them.

import { request, type IncomingMessage } from 'node:http';
import type { TransferMeter } from './meter.ts';
import { PERIOD_BYTES, slice } from './pattern.ts';
import type { TransferPlan } from './ftp-transfer.ts';

export interface HttpTarget {
  url: string;
  accessToken: string;
}

const WRITE_CHUNK_BYTES = 256 * 1024;
const SESSION_CHUNK_BYTES = 128 * 1024 * 1024;

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
    const req = request(
      url,
      {
        method: 'POST',
        agent: false,
        headers: {
          Authorization: `Bearer ${target.accessToken}`,
          'Dropbox-API-Arg': JSON.stringify(arg),
          ...(body ? { 'Content-Type': 'application/octet-stream', 'Content-Length': String(body.byteLength) } : {}),
        },
      },
      (res: IncomingMessage) => {
        const download = route === 'files/download' && res.statusCode === 200;
        let bytes = 0;
        const parts: Buffer[] = [];
        res.on('data', (chunk: Buffer) => {
          if (download) {
            bytes += chunk.length;
            meter.add(chunk.length);
          } else parts.push(chunk);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString(), bytes }));
        res.on('error', reject);
      },
    );
    req.setTimeout(stallTimeoutMs, () => req.destroy(new Error(`HTTP ${route}: stalled ${stallTimeoutMs} ms`)));
    req.on('error', reject);
    if (!body) {
      req.end();
      return;
    }
    let position = 0;
    const step = (): void => {
      while (position < body.byteLength) {
        const n = Math.min(WRITE_CHUNK_BYTES, body.byteLength - position, PERIOD_BYTES);
        const chunk = slice(body.sessionId, body.fromByte + position, n);
        position += n;
        const more = req.write(chunk, (err) => {
          if (!err) meter.add(n);
        });
        if (!more) {
          req.once('drain', step);
          return;
        }
      }
      req.end();
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
