// How far an upload's FTP client may run ahead of Dropbox: the bytes retained but not yet sent in a
// call (the "lead") are bounded by what this upload's share of the thread's upload bandwidth sends
// in LEAD_SECONDS, and never more than MAX_LEAD_BYTES. Runs on the thread that runs the uploads (one
// UploadFlow per ThreadContext).
// Why: the client waits for its 226 until every byte it sent is in Dropbox. Bounded by bytes only
// (memory share + spool), a thousand clients of 16 MiB uploads sent everything into the spool in
// seconds, then waited for minutes while their bytes drained at ~60-150 KB/s each, and 176 of them
// gave up ("no reply in 60 s", 2,000 x 16 MiB storm). An upload whose client reaches its lead gets
// a call of unknown length (upload-task.ts) that takes the bytes as they come, so the client moves
// at the pace its bytes really leave and its last byte is followed by its 226 within about
// LEAD_SECONDS (plus a closing call and the commit).
// Invariants: the rate is an exponentially weighted mean of the bytes this thread's upload calls
// took into their request bodies (time constant RATE_TAU_S), over the time at least one such body
// was open (uploads that are all still filling their first call send nothing, and must not read
// as a slow backend), starting from PRIOR_BYTES_PER_S whenever the thread takes its first upload
// after being idle; for the first WARM_UP_S of that clock the share is at least the prior's (the
// first calls of a storm ramp up together: a dip then is not the backend's pace); the lead limit is
// never below MIN_LEAD_BYTES.

/**
 * Seconds of its share of the bandwidth an upload's client may be ahead of Dropbox, unless
 * engine.uploadLeadSec says otherwise.
 */
export const LEAD_SECONDS = 20;
/** The smallest lead allowed, whatever the rate. */
export const MIN_LEAD_BYTES = 1024 * 1024;
/**
 * The largest lead allowed, whatever the rate. Past it an upload's bytes wait in the spool only so
 * that one call of known length may carry more of them, while the call could be taking them: a
 * 64 MiB STOR alone sent nothing until its client's last byte (20 s of a fast share is gigabytes),
 * then read all of it back from the spool, and one upload alone moved at 0.57-0.81x of a direct
 * files/upload with its hash (runs of 4 x 64 MiB). Capped here, it goes in a call of unknown
 * length that starts once its client is this far ahead, and 0.73-1.03x (9 alternating runs each,
 * medians 0.70x before and 0.89x after). It costs one call more (a closing append) for a STOR
 * larger than the cap, none for one within it (the 10 MiB STORs of the 200 storm).
 */
export const MAX_LEAD_BYTES = 16 * 1024 * 1024;
/**
 * The rate assumed for a thread before it has measured one (per thread): the first calls of a storm
 * start before any byte was sent. 64 MB/s over 100 uploads of a thread is 12.8 MB of lead (a 10 MiB
 * STOR of a 200-session storm still goes in one call of known length); over 1,000 it is 1.3 MB.
 */
export const PRIOR_BYTES_PER_S = 64 * 1000 * 1000;
/** Time constant of the rate's mean, seconds. */
export const RATE_TAU_S = 2;
/** Seconds of open bodies after an idle spell during which the prior share is a floor. */
export const WARM_UP_S = 2 * RATE_TAU_S;

/**
 * While a streamed call drains the backlog retained before its body opened, the client moves at this
 * share of the body's pace (retainLimit).
 */
export const DRAIN_SHARE = 0.5;
/**
 * The smallest memory share with which that client may also move into the spool while the backlog
 * drains. Below it (thousands of uploads in a small budget) it moves only into memory that has room
 * already (Retention.fill's spoolLimit): into the spool, the storm of 2,000 with a 64 MiB budget (16
 * KiB shares) ran at 61-72 against 80-90 MB/s, 21-24 against 16 CPU-s/GiB and 2.65-2.70 against
 * 2.26-2.36 calls per STOR (two alternating pairs): each upload held its backlog and its client's new
 * bytes in the spool at once.
 */
export const DRAIN_SPOOL_MIN_MEMORY = 1024 * 1024;

/** What retainLimit needs of a streamed call whose body is open (and of its upload's memory share). */
export interface OpenStream {
  /** File offset its body started to send from. */
  from: number;
  /** What was retained when its body opened: the backlog it sends first. */
  backlogEnd: number;
  memoryShare: number;
}

/** Where an upload's reader may retain the client's bytes to: `end`, and into the spool only below `spoolEnd`. */
export interface RetainLimit {
  end: number;
  spoolEnd: number;
}

/**
 * How far an upload's reader may retain the client's bytes: `lead` bytes beyond what calls have sent
 * (`sentTo`, at least `acked`). While a streamed call's body is open (`stream`, an upload with a
 * spool) the bytes it has not sent wait in memory, not in the spool (read back a moment later), so
 * the limit comes down to the memory share ahead — but the body first sends the backlog retained
 * before it opened (a whole lead, mostly spooled), and with the limit at the memory share the client
 * stood still until nearly all of it was sent (a storm of 200 x 30 MiB, each upload ~12 MiB ahead at
 * ~2 MB/s: every STOR stopped for 2.5-5.8 s at the same moment). While the backlog drains, the client
 * may move at DRAIN_SHARE of the body's pace, never beyond the lead: into the spool too where its
 * memory share is at least DRAIN_SPOOL_MIN_MEMORY, else (`spoolEnd`) only into memory that has room
 * already. Pure function.
 */
export function retainLimit(acked: number, sentTo: number, lead: number, stream: OpenStream | null): RetainLimit {
  const ahead = Math.max(acked, sentTo);
  if (!stream) return { end: ahead + lead, spoolEnd: Infinity };
  const steady = ahead + Math.min(lead, stream.memoryShare);
  const draining = Math.min(ahead + lead, stream.backlogEnd + Math.floor(Math.max(0, sentTo - stream.from) * DRAIN_SHARE));
  return { end: Math.max(steady, draining), spoolEnd: stream.memoryShare >= DRAIN_SPOOL_MIN_MEMORY ? Infinity : steady };
}

export class UploadFlow {
  /** Uploads running on this thread. */
  private active = 0;
  /** Call bodies open on this thread (the rate's clock runs only while there is one). */
  private bodies = 0;
  private rate = PRIOR_BYTES_PER_S;
  private at: number;
  /** Seconds the rate's clock ran since the thread was last idle. */
  private measuredS = 0;

  constructor(
    private readonly now: () => number = () => performance.now(),
    /** engine.uploadLeadSec as the control block holds it (0 or absent: LEAD_SECONDS). */
    private readonly leadSeconds: () => number = () => LEAD_SECONDS,
  ) {
    this.at = now();
  }

  /** An upload starts on this thread; an idle thread starts again from the prior rate. */
  begin(): void {
    if (this.active === 0) {
      this.rate = PRIOR_BYTES_PER_S;
      this.at = this.now();
      this.measuredS = 0;
    }
    this.active++;
  }

  end(): void {
    this.active = Math.max(0, this.active - 1);
  }

  /** A call's body opens (its first piece is asked for). */
  bodyOpen(): void {
    this.decay();
    this.bodies++;
  }

  bodyClose(): void {
    this.decay();
    this.bodies = Math.max(0, this.bodies - 1);
  }

  /** `bytes` went into an upload call's body. */
  sent(bytes: number): void {
    this.decay();
    this.rate += bytes / RATE_TAU_S;
  }

  /** Bytes per second this thread's uploads send now (the mean). */
  bytesPerSecond(): number {
    this.decay();
    return this.rate;
  }

  /** Bytes an upload of this thread may hold that no call has sent yet. */
  leadLimit(): number {
    return Math.min(MAX_LEAD_BYTES, this.paceLead());
  }

  /** The lead by the pace alone: this upload's share of the thread's rate over the lead's seconds. */
  paceLead(): number {
    const n = Math.max(1, this.active);
    const measured = this.bytesPerSecond() / n;
    const share = this.measuredS < WARM_UP_S ? Math.max(measured, PRIOR_BYTES_PER_S / n) : measured;
    return Math.max(MIN_LEAD_BYTES, Math.floor(share * (this.leadSeconds() || LEAD_SECONDS)));
  }

  private decay(): void {
    const t = this.now();
    const dt = (t - this.at) / 1000;
    if (dt > 0 && this.bodies > 0) {
      this.rate *= Math.exp(-dt / RATE_TAU_S);
      this.measuredS += dt;
    }
    this.at = t;
  }
}
