// Per-transfer accounting: bytes over time in fixed buckets, time to first byte, completion, and
// the longest stall (time with no byte). Runs in a load generator process. Invariants: times are
// absolute wall-clock milliseconds (performance.timeOrigin + now), comparable across processes;
// a meter is finished once and records nothing afterwards.

export type TransferOp = 'RETR' | 'STOR';

export interface TransferRecord {
  id: number;
  op: TransferOp;
  expectedBytes: number;
  bytes: number;
  /** Absolute ms at which the transfer command was issued. */
  startMs: number;
  firstByteMs: number | null;
  lastByteMs: number | null;
  /** Absolute ms of the final reply (226) or of the failure. */
  endMs: number | null;
  /** Longest time with no byte, counting the wait for the first byte. */
  longestGapMs: number;
  /** Longest time with no byte between the first and the last byte. */
  longestMidGapMs: number;
  ok: boolean;
  error?: string;
  /** Bytes per bucket of `bucketMs`, bucket 0 starting at the meter's epoch; absent when not kept. */
  buckets?: number[];
}

export const nowMs = (): number => performance.timeOrigin + performance.now();

export class TransferMeter {
  readonly record: TransferRecord;
  private finished = false;

  constructor(
    id: number,
    op: TransferOp,
    expectedBytes: number,
    private readonly epochMs: number,
    private readonly bucketMs: number,
  ) {
    this.record = {
      id,
      op,
      expectedBytes,
      bytes: 0,
      startMs: nowMs(),
      firstByteMs: null,
      lastByteMs: null,
      endMs: null,
      longestGapMs: 0,
      longestMidGapMs: 0,
      ok: false,
    };
    if (bucketMs > 0) this.record.buckets = [];
  }

  add(byteCount: number): void {
    if (this.finished) return;
    const r = this.record;
    const t = nowMs();
    const gap = t - (r.lastByteMs ?? r.startMs);
    if (gap > r.longestGapMs) r.longestGapMs = gap;
    if (r.lastByteMs !== null && gap > r.longestMidGapMs) r.longestMidGapMs = gap;
    if (r.firstByteMs === null) r.firstByteMs = t;
    r.lastByteMs = t;
    r.bytes += byteCount;
    if (r.buckets) {
      const i = Math.max(0, Math.floor((t - this.epochMs) / this.bucketMs));
      const b = r.buckets;
      while (b.length <= i) b.push(0);
      b[i]! += byteCount;
    }
  }

  finish(ok: boolean, error?: string): TransferRecord {
    if (this.finished) return this.record;
    this.finished = true;
    const r = this.record;
    r.endMs = nowMs();
    r.ok = ok;
    if (error !== undefined) r.error = error;
    return r;
  }
}
