// TYPE A conversions (RFC 959 3.1.1.1): stored files use LF line ends, the wire uses CRLF. Main
// thread. Invariant: a CR that ends one chunk is held until the next one decides it (no lost or
// doubled bytes at chunk borders).

import { Transform, type TransformCallback } from 'node:stream';

/** Storage → wire: every LF not already preceded by CR becomes CRLF. */
export class ToCrlf extends Transform {
  #lastWasCr = false;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    let start = 0;
    const parts: Buffer[] = [];
    for (let i = 0; i < chunk.length; i++) {
      if (chunk[i] === 0x0a && !(i === 0 ? this.#lastWasCr : chunk[i - 1] === 0x0d)) {
        parts.push(chunk.subarray(start, i), CRLF);
        start = i + 1;
      }
    }
    parts.push(chunk.subarray(start));
    if (chunk.length) this.#lastWasCr = chunk[chunk.length - 1] === 0x0d;
    callback(null, Buffer.concat(parts));
  }
}

/** Wire → storage: CRLF becomes LF; a lone CR stays. */
export class FromCrlf extends Transform {
  #pendingCr = false;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const parts: Buffer[] = [];
    let start = 0;
    if (this.#pendingCr) {
      if (chunk[0] !== 0x0a) parts.push(CR);
      this.#pendingCr = false;
    }
    for (let i = 0; i < chunk.length; i++) {
      if (chunk[i] !== 0x0d) continue;
      if (i === chunk.length - 1) {
        parts.push(chunk.subarray(start, i));
        this.#pendingCr = true;
        start = chunk.length;
      } else if (chunk[i + 1] === 0x0a) {
        parts.push(chunk.subarray(start, i));
        start = i + 1; // keep the LF
      }
    }
    parts.push(chunk.subarray(start));
    callback(null, Buffer.concat(parts));
  }
  override _flush(callback: TransformCallback): void {
    callback(null, this.#pendingCr ? CR : undefined);
  }
}

const CR = Buffer.from([0x0d]);
const CRLF = Buffer.from([0x0d, 0x0a]);
