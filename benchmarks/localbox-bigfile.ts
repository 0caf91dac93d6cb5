// Acceptance run for the local box (issue 3): a 5 GiB file uploaded through an upload session and
// downloaded back, compared byte for byte, with the server's RSS sampled throughout (must stay
// < 200 MiB). Too slow for CI. Usage: node --import tsx benchmarks/localbox-bigfile.ts
// Env: LOCALBOX_BIG_BYTES (default 5 GiB), LOCALBOX_APPEND_BYTES (default 64 MiB). Saves
// benchmarks/results/localbox-bigfile.json.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { ContentHasher, startLocalBox } from '../src/localbox/index.ts';
import { fmtRate, makeBlockSource, MiB, sampleRss, saveResult } from './localbox-common.ts';

const totalBytes = Number(process.env.LOCALBOX_BIG_BYTES ?? 5 * 1024 * MiB);
const appendBytes = Number(process.env.LOCALBOX_APPEND_BYTES ?? 64 * MiB);
const dataDir = mkdtempSync(join(tmpdir(), 'localbox-big-'));
const box = await startLocalBox({ dataDir });
const rss = sampleRss(box.pid, 50);
try {
  const acc = await box.createAccount('big');
  const block = makeBlockSource();
  const chunk = (offset: number, len: number): Buffer => {
    // offset and len are multiples of 4 MiB except the final piece
    const parts: Buffer[] = [];
    for (let o = offset; o < offset + len; o += 4 * MiB) parts.push(block(o / (4 * MiB), Math.min(4 * MiB, offset + len - o)));
    return Buffer.concat(parts);
  };
  const api = async (route: string, arg: unknown, body: Buffer | null): Promise<any> => {
    const r = await request(`${box.url}/2/${route}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${acc.accessToken}`, 'Content-Type': 'application/octet-stream', 'Dropbox-API-Arg': JSON.stringify(arg) },
      body: body ?? '',
    });
    const text = await r.body.text();
    if (r.statusCode !== 200) throw new Error(`${route}: ${r.statusCode} ${text}`);
    return JSON.parse(text);
  };

  const hasher = new ContentHasher();
  const upStart = process.hrtime.bigint();
  const { session_id } = await api('files/upload_session/start', {}, null);
  for (let off = 0; off < totalBytes; off += appendBytes) {
    const data = chunk(off, Math.min(appendBytes, totalBytes - off));
    hasher.update(data);
    await api('files/upload_session/append_v2', { cursor: { session_id, offset: off } }, data);
    if ((off / appendBytes) % 16 === 0) process.stdout.write(`\rupload ${((off / totalBytes) * 100).toFixed(0)}%  `);
  }
  const meta = await api('files/upload_session/finish', { cursor: { session_id, offset: totalBytes }, commit: { path: '/big.bin' } }, null);
  const upSec = Number(process.hrtime.bigint() - upStart) / 1e9;
  const expectedHash = hasher.digest();
  if (meta.size !== totalBytes || meta.content_hash !== expectedHash) throw new Error(`commit mismatch: ${JSON.stringify(meta)}`);
  process.stdout.write(`\rupload done: ${fmtRate(totalBytes / upSec)}\n`);

  const downStart = process.hrtime.bigint();
  const r = await request(`${box.url}/2/files/download`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${acc.accessToken}`, 'Dropbox-API-Arg': JSON.stringify({ path: meta.id }) },
  });
  if (r.statusCode !== 200) throw new Error(`download: ${r.statusCode}`);
  let pos = 0;
  let mismatchAt = -1;
  let expectBlock = -1;
  let expected: Buffer = Buffer.alloc(0);
  for await (const piece of r.body as AsyncIterable<Buffer>) {
    let o = 0;
    while (o < piece.length) {
      const b = Math.floor(pos / (4 * MiB));
      if (b !== expectBlock) {
        expectBlock = b;
        expected = block(b, Math.min(4 * MiB, totalBytes - b * 4 * MiB));
      }
      const inBlock = pos - b * 4 * MiB;
      const n = Math.min(piece.length - o, expected.length - inBlock);
      if (mismatchAt < 0 && !piece.subarray(o, o + n).equals(expected.subarray(inBlock, inBlock + n))) mismatchAt = pos;
      o += n;
      pos += n;
    }
  }
  const downSec = Number(process.hrtime.bigint() - downStart) / 1e9;
  const { maxBytes, samples } = rss.stop();
  const result = {
    date: new Date().toISOString(),
    node: process.version,
    totalBytes,
    appendBytes,
    upload: { seconds: upSec, bytesPerSec: totalBytes / upSec },
    download: { seconds: downSec, bytesPerSec: totalBytes / downSec, bytes: pos },
    byteExact: pos === totalBytes && mismatchAt < 0,
    mismatchAt,
    contentHash: meta.content_hash,
    serverRss: { maxBytes, maxMiB: maxBytes / MiB, samples, limitMiB: 200, ok: maxBytes < 200 * MiB },
  };
  console.log(JSON.stringify(result, null, 2));
  console.log(`saved ${saveResult('localbox-bigfile', result)}`);
  if (!result.byteExact || !result.serverRss.ok) process.exitCode = 1;
} finally {
  rss.stop();
  await box.close();
  rmSync(dataDir, { recursive: true, force: true });
}
