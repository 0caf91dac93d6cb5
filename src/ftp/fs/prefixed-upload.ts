// An upload whose first bytes come from the file's current version (APPE, or REST beyond any kept
// session): the engine upload receives `prefixBytes` read through the engine's download (of that
// version's rev; the commit replaces only that rev: dropbox-fs.ts), then the client's bytes. Main thread. Invariants: client bytes wait (backpressure) until the prefix is
// fully copied and the whole download has ended verified (content_hash); a short prefix fails the
// upload (DROPFTP_ERR_BAD_OFFSET); any failure aborts the engine upload, so nothing is committed.

import { Writable, type Readable } from 'node:stream';
import { DropftpError, toDropftpError } from '../../errors.ts';
import type { EngineUpload } from './transfer-adapter.ts';
import type { UploadSink } from './types.ts';

export class PrefixedUpload extends Writable implements UploadSink {
  readonly #inner: EngineUpload;
  readonly #prefix: Readable;
  readonly #ready: Promise<void>;

  constructor(inner: EngineUpload, prefix: Readable, prefixBytes: number) {
    super({ highWaterMark: 64 * 1024 });
    this.#inner = inner;
    this.#prefix = prefix;
    inner.on('error', (err) => this.destroy(err));
    this.#ready = this.#copyPrefix(prefixBytes);
    this.#ready.catch((err) => {
      const e = toDropftpError(err, 'DROPFTP_ERR_UPSTREAM');
      // The prefix is read by the rev get_metadata saw: gone means replaced or deleted meanwhile.
      this.destroy(e.code === 'DROPFTP_ERR_NOT_FOUND' ? new DropftpError('DROPFTP_ERR_EXISTS', e.message, { clientDetail: 'the file changed meanwhile; nothing was saved' }) : e);
    });
  }

  get commitStarted(): boolean {
    return this.#inner.commitStarted;
  }

  async #copyPrefix(prefixBytes: number): Promise<void> {
    let copied = 0;
    // Read to the download's end even past the prefix: the end is where the engine checks the
    // file's content_hash, and a corrupted prefix must fail the upload, never be committed.
    for await (const chunk of this.#prefix) {
      if (copied >= prefixBytes) continue;
      const buf = chunk as Buffer;
      const part = copied + buf.length > prefixBytes ? buf.subarray(0, prefixBytes - copied) : buf;
      copied += part.length;
      if (part.length && !this.#inner.write(part)) await this.#drained();
    }
    this.#prefix.destroy();
    if (copied < prefixBytes) throw new DropftpError('DROPFTP_ERR_BAD_OFFSET', `file has ${copied} bytes, REST asked ${prefixBytes}`);
  }

  #drained(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onDrain = (): void => {
        this.#inner.off('close', onClose);
        resolve();
      };
      const onClose = (): void => {
        this.#inner.off('drain', onDrain);
        reject(new DropftpError('DROPFTP_ERR_ABORTED', 'upload closed'));
      };
      this.#inner.once('drain', onDrain);
      this.#inner.once('close', onClose);
    });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#ready.then(() => {
      if (this.#inner.write(chunk)) callback();
      else this.#drained().then(() => callback(), callback);
    }, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#ready.then(() => {
      this.#inner.once('finish', () => callback());
      this.#inner.end();
    }, callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#prefix.destroy();
    if (!this.#inner.writableFinished) this.#inner.abort(error?.message ?? 'upload destroyed');
    callback(error);
  }

  abort(reason = 'upload aborted'): void {
    this.destroy(new DropftpError('DROPFTP_ERR_ABORTED', reason));
  }
}
