// Runs one data transfer and sends its final reply. Main thread. Invariants: exactly one final
// reply per transfer (226 only on success, else the error's registry code: 426 aborted/stalled/
// client gone, 451 upstream); a stream that closes without end/finish/error fails the transfer;
// an upload is ended (committed) only after the client's data socket ended cleanly — any reset,
// abort, stall or shutdown aborts it instead, and an end is trusted only once
// confirmCleanEnd has told it from a reset read as EOF; a client that moves no byte for
// stallTimeoutMs while it is its turn (we read, or bytes wait for it) → 426; every transfer, LIST included, emits one 'transfer-end' (TransferEnd) on
// its session after the data connection is settled and before its final reply.

import type { Readable } from 'node:stream';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { DropftpError, toDropftpError } from '../errors.ts';
import type { ActiveTransfer, FtpSession } from './session-types.ts';
import type { UploadSink } from './fs/types.ts';
import { confirmCleanEnd, handshakeDone } from './data/clean-end.ts';
import { payloadCopies } from '../transfer/copy-counts.ts';
import { markDisposable } from '../util/release-memory.ts';
import { readerOf } from './data/socket-reader.ts';
import { UploadStream } from '../transfer/upload-stream.ts';

/**
 * A source that can hand out views into its own memory instead of copies (the engine's download):
 * each chunk stays the source's memory until release(chunk.length), called in order.
 */
interface ViewLender {
  lendViews(): boolean;
  release(byteLength: number): void;
}

function lendsViews(source: Readable): source is Readable & ViewLender {
  const s = source as Readable & Partial<ViewLender>;
  return typeof s.lendViews === 'function' && typeof s.release === 'function' && s.lendViews();
}

export interface TransferHandle extends ActiveTransfer {
  readonly signal: AbortSignal;
  /**
   * True once an upload's commit is on its way (set by receiveStream at the clean end): from then
   * on abort() is ignored and the commit's own outcome makes the reply (an ABOR during the commit
   * got 426 while the file was replaced all the same). Between the clean end and the commit (the
   * worker still sending the last bytes to Dropbox) an abort still stops it: a client killed
   * mid-upload closes both its connections at once, and its truncated file must not be committed.
   */
  committing: () => boolean;
}

/** Payload of the session's 'transfer-end' event: the handle's final facts (bytes as moved). */
export interface TransferEnd {
  /** RETR, STOR, APPE, STOU, LIST, NLST or MLSD. */
  directive: string;
  /** Bytes moved on the data connection (before any TYPE A conversion for uploads). */
  bytes: number;
  /** null on success (226); else the error whose reply ends the transfer. */
  error: DropftpError | null;
  handle: TransferHandle;
}

export const TRANSFER_END = 'transfer-end';

/** Waits for the session's data connection (425 when there is none or it never comes). */
export async function waitForData(session: FtpSession): Promise<Duplex> {
  try {
    return await session.connector.waitForSocket(session.server.limits.dataConnectTimeoutMs);
  } catch (err) {
    session.closeConnector();
    throw err instanceof DropftpError ? err : new DropftpError('DROPFTP_ERR_NO_DATA_CONNECTION', 'use PASV, EPSV, PORT or EPRT first');
  }
}

export async function runTransfer(
  session: FtpSession,
  directive: string,
  socket: Duplex,
  body: (handle: TransferHandle) => Promise<void>,
  successText = 'Transfer complete',
): Promise<void> {
  const controller = new AbortController();
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  const aborted = new Promise<never>((_, reject) => {
    controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
  });
  aborted.catch(() => {});
  const handle: TransferHandle = {
    directive,
    bytes: 0,
    done,
    signal: controller.signal,
    committing: () => false,
    abort: (err) => {
      if (!handle.committing()) controller.abort(err);
    },
  };
  session.transfer = handle;
  const stallMs = session.server.limits.stallTimeoutMs;
  let stopStallClock = (): void => {};
  if (stallMs > 0 && 'setTimeout' in socket) {
    // One 'timeout' listener for the whole transfer; the timer is (re)armed without a callback:
    // socket.setTimeout(ms, cb) adds cb as one more listener on every call, and an upload resumed
    // at each backpressure cycle piled up hundreds on its data socket.
    const timed = socket as Duplex & { setTimeout(ms: number): void };
    const receiving = directive === 'STOR' || directive === 'APPE' || directive === 'STOU';
    const onIdle = (): void => {
      if (handle.signal.aborted) return;
      // Only the client's stall counts: an upload we stopped reading (backpressure while Dropbox
      // takes its bytes) or a download with nothing queued for the client (waiting for Dropbox) is
      // the engine's wait, bounded by its own request timeouts and retries.
      if (receiving ? socket.isPaused() : socket.writableLength === 0) return timed.setTimeout(stallMs);
      handle.abort(new DropftpError('DROPFTP_ERR_STALLED', `no data for ${stallMs} ms`));
    };
    // The client's stall clock starts when we ask for its bytes again, not when we stopped reading.
    const rearm = (): void => timed.setTimeout(stallMs);
    socket.on('timeout', onIdle);
    if (receiving) socket.on('resume', rearm);
    timed.setTimeout(stallMs);
    stopStallClock = () => {
      socket.off('timeout', onIdle);
      socket.off('resume', rearm);
      timed.setTimeout(0);
    };
  }
  let error: DropftpError | null = null;
  try {
    const running = body(handle);
    running.catch(() => {});
    await Promise.race([running, aborted]);
  } catch (err) {
    error = toDropftpError(err);
    if (!controller.signal.aborted) controller.abort(error);
    socket.destroy();
  } finally {
    stopStallClock();
    if (session.transfer === handle) session.transfer = null;
    session.closeConnector();
  }
  try {
    try {
      session.emit(TRANSFER_END, { directive, bytes: handle.bytes, error, handle } satisfies TransferEnd);
    } catch {
      /* a listener's failure must not cost the transfer its reply */
    }
    session.emit(directive, error, undefined);
    if (error) await session.reply(error.ftpCode, error.clientText);
    else await session.reply(226, successText);
  } finally {
    resolveDone();
  }
}

/** After a successful send: read and drop whatever the client still sends, so its FIN closes us. */
function drainAndClose(socket: Duplex, timeoutMs: number): void {
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.on('data', () => {});
  socket.resume();
}

function once<T>(run: (settle: (err: DropftpError | null, value?: T) => void) => () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    let cleanup: () => void = () => {};
    const settle = (err: DropftpError | null, value?: T): void => {
      if (settled) return;
      settled = true;
      cleanup();
      if (err) reject(err);
      else resolve(value as T);
    };
    cleanup = run(settle);
  });
}

/**
 * Source → data socket with backpressure; resolves once every byte is flushed to the socket. A
 * source that lends views (the engine's download) is written from its own memory, each view handed
 * back by its write's callback (which also runs, with an error, for writes a destroy cut short).
 */
export function sendStream(source: Readable, socket: Duplex, handle: TransferHandle, drainTimeoutMs: number): Promise<void> {
  return once<void>((settle) => {
    const fail = (err: DropftpError): void => {
      socket.destroy();
      source.destroy();
      settle(err);
    };
    const lender = lendsViews(source) ? source : null;
    const tls = socket instanceof TLSSocket;
    const onData = (chunk: Buffer): void => {
      const byteLength = chunk.length;
      handle.bytes += byteLength;
      if (tls) payloadCopies.tlsBytes += byteLength;
      const more = lender ? socket.write(chunk, () => lender.release(byteLength)) : socket.write(chunk);
      if (!more) source.pause();
    };
    const onDrain = (): void => void source.resume();
    const onEnd = (): void => void socket.end();
    const onFinish = (): void => {
      drainAndClose(socket, drainTimeoutMs);
      settle(null);
    };
    const onSourceError = (err: unknown): void => fail(toDropftpError(err, 'DROPFTP_ERR_UPSTREAM'));
    const onSourceClose = (): void => {
      if (!source.readableEnded) fail(new DropftpError('DROPFTP_ERR_UPSTREAM', 'download stream closed before its end'));
    };
    const onSocketGone = (): void => {
      if (!socket.writableFinished) fail(new DropftpError('DROPFTP_ERR_CLIENT_GONE'));
    };
    // A TLS data connection the client ends before its handshake can never take a byte: without
    // this the download waited for a drain until the stall timeout (twice over).
    const onTlsEnd = (): void => {
      if (!handshakeDone(socket)) fail(new DropftpError('DROPFTP_ERR_CLIENT_GONE', 'data connection closed before its TLS handshake'));
    };
    if (tls) {
      socket.once('end', onTlsEnd);
      socket.on('data', ignore);
    }
    const onAbort = (): void => fail(toDropftpError(handle.signal.reason, 'DROPFTP_ERR_ABORTED'));
    source.on('data', onData);
    source.once('end', onEnd);
    source.once('error', onSourceError);
    source.once('close', onSourceClose);
    socket.on('drain', onDrain);
    socket.once('finish', onFinish);
    socket.once('error', onSocketGone);
    socket.once('close', onSocketGone);
    handle.signal.addEventListener('abort', onAbort);
    if (handle.signal.aborted) queueMicrotask(onAbort);
    source.resume();
    return () => {
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onSourceError);
      source.off('close', onSourceClose);
      source.on('error', () => {});
      socket.off('drain', onDrain);
      socket.off('finish', onFinish);
      socket.off('error', onSocketGone);
      socket.off('close', onSocketGone);
      socket.off('end', onTlsEnd);
      socket.off('data', ignore);
      handle.signal.removeEventListener('abort', onAbort);
    };
  });
}

const ignore = (): void => {};

/** Sends one buffer (a listing) and ends the data connection. */
export function sendBuffer(buffer: Buffer, socket: Duplex, handle: TransferHandle, drainTimeoutMs: number): Promise<void> {
  return once<void>((settle) => {
    const onFinish = (): void => {
      drainAndClose(socket, drainTimeoutMs);
      settle(null);
    };
    const onGone = (): void => {
      if (!socket.writableFinished) {
        socket.destroy();
        settle(new DropftpError('DROPFTP_ERR_CLIENT_GONE'));
      }
    };
    const onAbort = (): void => {
      socket.destroy();
      settle(toDropftpError(handle.signal.reason, 'DROPFTP_ERR_ABORTED'));
    };
    socket.once('finish', onFinish);
    socket.once('error', onGone);
    socket.once('close', onGone);
    handle.signal.addEventListener('abort', onAbort);
    handle.bytes += buffer.length;
    socket.end(buffer);
    return () => {
      socket.off('finish', onFinish);
      socket.off('error', onGone);
      socket.off('close', onGone);
      handle.signal.removeEventListener('abort', onAbort);
    };
  });
}

/**
 * Data socket → upload sink. The sink is ended (which commits) only on the socket's clean 'end',
 * confirmed on the TCP socket (`dataSocket`: the socket itself, or the one under a TYPE A
 * converter); every other way out aborts the sink, which commits nothing.
 */
export function receiveStream(socket: Duplex, sink: UploadSink, handle: TransferHandle, dataSocket: Duplex = socket): Promise<void> {
  return once<void>((settle) => {
    let clientEnded = false;
    let active = true;
    const fail = (err: DropftpError): void => {
      sink.abort(err.message);
      socket.destroy();
      settle(err);
    };
    const tls = dataSocket instanceof TLSSocket;
    // A read straight from the data socket, seen by no other listener, is the sink's alone: the one
    // that copies it into ring memory frees it at once (release-memory.ts), instead of the GC.
    const direct = socket === dataSocket;
    const onData = (chunk: Buffer): void => {
      handle.bytes += chunk.length;
      if (tls) payloadCopies.tlsBytes += chunk.length;
      if (direct && socket.listenerCount('data') === 1) markDisposable(chunk);
      if (!sink.write(chunk)) socket.pause();
    };
    // A plain socket of ours into the engine's ring: the kernel writes the bytes into ring memory
    // (socket-reader.ts); nothing buffered in the socket yet (else those bytes go first, as data).
    const reader = direct ? readerOf(socket) : null;
    const input = reader && socket.readableLength === 0 && sink instanceof UploadStream ? sink.directInput(() => reader.stop()) : null;
    if (input) reader!.readInto(input, (n) => (handle.bytes += n));
    else reader?.streamMode();
    const onDrain = (): void => void socket.resume();
    const onEnd = (): void => {
      // From here the probe decides: the input may close (a TYPE A converter does) before it answers.
      clientEnded = true;
      void confirmCleanEnd(dataSocket).then((clean) => {
        if (!active) return;
        if (!clean) return fail(new DropftpError('DROPFTP_ERR_CLIENT_GONE', 'data connection reset before its end'));
        if (handle.signal.aborted) return; // onAbort has run or is queued: nothing is committed
        handle.committing = () => sink.commitStarted ?? true;
        dataSocket.end();
        sink.end();
      });
    };
    const onFinish = (): void => settle(null);
    const onSinkError = (err: unknown): void => fail(toDropftpError(err, 'DROPFTP_ERR_COMMIT_FAILED'));
    const onSinkClose = (): void => {
      if (!sink.writableFinished) fail(new DropftpError('DROPFTP_ERR_COMMIT_FAILED', 'upload stream closed before its commit'));
    };
    const onSocketGone = (): void => {
      if (!clientEnded) fail(new DropftpError('DROPFTP_ERR_CLIENT_GONE'));
    };
    const onAbort = (): void => fail(toDropftpError(handle.signal.reason, 'DROPFTP_ERR_ABORTED'));
    if (!input) socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('error', onSocketGone);
    socket.once('close', onSocketGone);
    sink.on('drain', onDrain);
    sink.once('finish', onFinish);
    sink.once('error', onSinkError);
    sink.once('close', onSinkClose);
    handle.signal.addEventListener('abort', onAbort);
    if (handle.signal.aborted) queueMicrotask(onAbort);
    socket.resume();
    return () => {
      active = false;
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onSocketGone);
      socket.off('close', onSocketGone);
      sink.off('drain', onDrain);
      sink.off('finish', onFinish);
      sink.off('error', onSinkError);
      sink.off('close', onSinkClose);
      sink.on('error', () => {});
      handle.signal.removeEventListener('abort', onAbort);
    };
  });
}
