// Per-user bandwidth caps on data transfers: wraps a session's file system so that every RETR
// stream and every STOR/APPE sink passes through the user's shared token bucket (bandwidth.ts).
// Main thread. Invariants: an uncapped user gets the file system back untouched (no cost); the
// wrapped upload sink keeps the UploadSink contract — 'finish' only after the inner sink finished
// (committed), abort() commits nothing — and holds at most one chunk beyond the inner sink's own
// buffer (backpressure end to end); a download stops pulling from its source while it waits; its
// errors are registry errors (DROPFTP_ERR_ABORTED, DROPFTP_ERR_COMMIT_FAILED).

import { pipeline, Writable } from 'node:stream';
import type { Readable } from 'node:stream';
import { DropftpError } from '../errors.ts';
import type { SessionFs, UploadSink } from '../ftp/fs/types.ts';
import type { BandwidthLimits } from './bandwidth.ts';
import type { TokenBucket } from './token-bucket.ts';

export function throttleSessionFs(fs: SessionFs, user: string, limits: BandwidthLimits): SessionFs {
  const down = limits.bucket(user, 'download');
  const up = limits.bucket(user, 'upload');
  if (!down && !up) return fs;
  return new Proxy(fs, {
    get(target, property) {
      // Arguments typed from SessionFs itself and passed through whole, so a new option cannot be dropped.
      if (property === 'openRead' && down) {
        return async (...args: Parameters<SessionFs['openRead']>): Promise<Readable> => throttledRead(await target.openRead(...args), down);
      }
      if (property === 'openWrite' && up) {
        return async (...args: Parameters<SessionFs['openWrite']>): Promise<UploadSink> => new ThrottledSink(await target.openWrite(...args), up);
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

function throttledRead(source: Readable, bucket: TokenBucket): Readable {
  const throttle = bucket.throttle();
  // pipeline destroys the source when the throttle is destroyed (client gone, ABOR) and vice versa.
  pipeline(source, throttle, () => {});
  return throttle;
}

class ThrottledSink extends Writable implements UploadSink {
  readonly #inner: UploadSink;
  readonly #bucket: TokenBucket;
  readonly #abort = new AbortController();

  constructor(inner: UploadSink, bucket: TokenBucket) {
    super({ highWaterMark: 64 * 1024 });
    this.#inner = inner;
    this.#bucket = bucket;
    inner.on('error', (err: Error) => this.destroy(err));
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#bucket.take(chunk.length, this.#abort.signal).then(
      () => {
        if (this.#inner.write(chunk)) callback();
        else this.#inner.once('drain', () => callback());
      },
      (err: Error) => callback(err),
    );
  }

  override _final(callback: (error?: Error | null) => void): void {
    const onFinish = (): void => {
      this.#inner.off('close', onClose);
      callback();
    };
    const onClose = (): void => {
      this.#inner.off('finish', onFinish);
      if (!this.#inner.writableFinished) callback(new DropftpError('DROPFTP_ERR_COMMIT_FAILED', 'upload closed before its commit'));
    };
    this.#inner.once('finish', onFinish);
    this.#inner.once('close', onClose);
    this.#inner.end();
  }

  override _destroy(err: Error | null, callback: (error: Error | null) => void): void {
    this.#abort.abort(err ?? new DropftpError('DROPFTP_ERR_ABORTED', 'upload aborted'));
    if (!this.#inner.writableFinished) this.#inner.abort(err?.message ?? 'aborted');
    callback(err);
  }

  get commitStarted(): boolean {
    return this.#inner.commitStarted ?? true;
  }

  abort(reason?: string): void {
    this.destroy(new DropftpError('DROPFTP_ERR_ABORTED', reason ?? 'upload aborted'));
  }
}
