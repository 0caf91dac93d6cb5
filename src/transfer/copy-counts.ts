// Payload bytes the main thread moved and copied, per direction (issue #14: at most one copy per
// byte). Main thread only (plain counters, no atomics). Invariant: `*CopiedBytes` grows exactly
// where our code copies payload bytes (a ring read into a Buffer, a Buffer written into a ring);
// TLS's own copy (encryption into OpenSSL's buffers) is counted apart, in `tlsBytes`.

export interface PayloadCopyCounts {
  /** RETR bytes handed to a consumer, views or copies. */
  retrBytes: number;
  /** RETR bytes copied out of the ring (a consumer that cannot take views). */
  retrCopiedBytes: number;
  /** STOR bytes put into rings. */
  storBytes: number;
  /** STOR bytes copied into rings (a socket read straight into ring memory copies none). */
  storCopiedBytes: number;
  /** Payload bytes through TLS data sockets (each one copied by the encryption, Node gives no choice). */
  tlsBytes: number;
}

export const payloadCopies: PayloadCopyCounts = { retrBytes: 0, retrCopiedBytes: 0, storBytes: 0, storCopiedBytes: 0, tlsBytes: 0 };

/** A snapshot of the counters since the process started. */
export function readPayloadCopies(): PayloadCopyCounts {
  return { ...payloadCopies };
}
