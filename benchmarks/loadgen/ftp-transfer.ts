// One FTP transfer (RETR or STOR) over a passive data connection, metered byte by byte, optionally
// cut short by ABOR or by dropping the whole session. Runs in a load generator process.
// Invariants: the data socket is connected before the command is sent; STOR writes respect
// backpressure ('drain') and count bytes when the kernel took them; after an ABOR the control
// connection is re-synchronised with a NOOP so that no stray reply is read by the next command.

import type { Socket } from 'node:net';
import { FtpClientError, connectData, type FtpControl, type ReadSink } from './ftp-client.ts';
import type { TransferMeter, TransferOp } from './meter.ts';
import { PERIOD_BYTES, slice } from './pattern.ts';

export interface TransferPlan {
  op: TransferOp;
  path: string;
  sizeBytes: number;
  /** Whose pattern offset a STOR streams (see pattern.ts). */
  sessionId: number;
  /** Cut the transfer after this many bytes: ABOR keeps the session, drop resets it. */
  cutAfterBytes?: number;
  cut?: 'abort' | 'drop';
  /** A data connection with no byte for this long fails the transfer. */
  stallTimeoutMs: number;
}

export type TransferOutcome = 'complete' | 'aborted' | 'dropped';

const WRITE_CHUNK_BYTES = 256 * 1024;

export async function ftpTransfer(ctl: FtpControl, plan: TransferPlan, meter: TransferMeter): Promise<TransferOutcome> {
  const { host, port } = await ctl.passive();
  const sink: ReadSink = { onBytes: () => {} };
  const data = await connectData(host, port, 30_000, ctl.localAddress, plan.op === 'RETR' ? sink : undefined);
  data.setTimeout(plan.stallTimeoutMs, () => data.destroy(new FtpClientError(`data connection stalled ${plan.stallTimeoutMs} ms`)));
  try {
    return plan.op === 'RETR' ? await retr(ctl, data, sink, plan, meter) : await stor(ctl, data, plan, meter);
  } finally {
    if (!data.destroyed) data.destroy();
  }
}

async function retr(ctl: FtpControl, data: Socket, sink: ReadSink, plan: TransferPlan, meter: TransferMeter): Promise<TransferOutcome> {
  const cutAt = plan.cut ? (plan.cutAfterBytes ?? 0) : Infinity;
  let received = 0;
  const ended = new Promise<'end' | 'cut'>((resolve, reject) => {
    sink.onBytes = (n) => {
      if (data.destroyed) return;
      received += n;
      meter.add(n);
      if (received >= cutAt) {
        data.destroy();
        resolve('cut');
      }
    };
    let ended = false;
    data.once('end', () => {
      ended = true;
      resolve('end');
    });
    data.once('error', reject);
    // A data connection that closes without a FIN (reset, or destroyed by us) is not a clean end.
    data.once('close', () => (ended ? resolve('end') : reject(new FtpClientError(`data connection closed without end after ${received} bytes`))));
  });
  ended.catch(() => {});
  ctl.write(`RETR ${plan.path}`);
  const prelim = await ctl.reply();
  if (prelim.code >= 200) throw new FtpClientError(`RETR: ${prelim.code} ${prelim.text}`, prelim);
  const how = await ended;
  if (how === 'cut') return cut(ctl, plan);
  const final = await ctl.reply();
  if (final.code >= 300) throw new FtpClientError(`RETR: ${final.code} ${final.text}`, final);
  if (received !== plan.sizeBytes) throw new FtpClientError(`RETR: ${received} bytes, expected ${plan.sizeBytes}`);
  return 'complete';
}

async function stor(ctl: FtpControl, data: Socket, plan: TransferPlan, meter: TransferMeter): Promise<TransferOutcome> {
  const closed = new Promise<void>((resolve, reject) => {
    data.once('error', reject);
    data.once('close', () => resolve());
  });
  closed.catch(() => {});
  ctl.write(`STOR ${plan.path}`);
  const prelim = await ctl.reply();
  if (prelim.code >= 200) throw new FtpClientError(`STOR: ${prelim.code} ${prelim.text}`, prelim);
  const limit = plan.cut ? Math.min(plan.sizeBytes, plan.cutAfterBytes ?? 0) : plan.sizeBytes;
  await pump(data, plan.sessionId, limit, meter);
  if (plan.cut) {
    data.destroy();
    return cut(ctl, plan);
  }
  data.end();
  await closed;
  const final = await ctl.reply();
  if (final.code >= 300) throw new FtpClientError(`STOR: ${final.code} ${final.text}`, final);
  return 'complete';
}

function pump(data: Socket, sessionId: number, limitBytes: number, meter: TransferMeter): Promise<void> {
  return new Promise((resolve, reject) => {
    let position = 0;
    let flushed = 0;
    const onError = (err: Error): void => reject(err);
    const onClose = (): void => reject(new FtpClientError(`data connection closed after ${flushed} of ${limitBytes} bytes`));
    // The server may have closed the data connection while we awaited its 150.
    if (data.destroyed || !data.writable) {
      onClose();
      return;
    }
    data.once('error', onError);
    data.once('close', onClose);
    const step = (): void => {
      while (position < limitBytes) {
        const n = Math.min(WRITE_CHUNK_BYTES, limitBytes - position, PERIOD_BYTES);
        const chunk = slice(sessionId, position, n);
        position += n;
        const more = data.write(chunk, (err) => {
          if (err) return reject(err);
          flushed += n;
          meter.add(n);
          if (flushed === limitBytes) {
            data.removeListener('error', onError);
            data.removeListener('close', onClose);
            resolve();
          }
        });
        if (!more) {
          data.once('drain', step);
          return;
        }
      }
    };
    if (limitBytes === 0) {
      data.removeListener('error', onError);
      data.removeListener('close', onClose);
      resolve();
      return;
    }
    step();
  });
}

async function cut(ctl: FtpControl, plan: TransferPlan): Promise<TransferOutcome> {
  if (plan.cut === 'drop') {
    ctl.drop();
    return 'dropped';
  }
  // Wait for ABOR's own 225/226 (after any 426) before the next command: servers that run ABOR
  // asynchronously have been seen answering a pipelined NOOP before it.
  ctl.write('ABOR');
  for (let i = 0; i < 4; i++) {
    const r = await ctl.reply(ABOR_REPLY_TIMEOUT_MS);
    if (r.code === 225 || r.code === 226 || r.code >= 500) break;
    if (r.code < 400) throw new FtpClientError(`ABOR: unexpected ${r.code} ${r.text}`, r);
  }
  await resync(ctl);
  return 'aborted';
}

const ABOR_REPLY_TIMEOUT_MS = 10_000;

/** Reads replies (a late 225/226, ...) until a NOOP's 200 shows the control stream is in step. */
async function resync(ctl: FtpControl): Promise<void> {
  ctl.write('NOOP');
  for (let i = 0; i < 8; i++) {
    const r = await ctl.reply(15_000);
    if (r.code === 200) return;
  }
  throw new FtpClientError('control connection out of step after ABOR');
}
