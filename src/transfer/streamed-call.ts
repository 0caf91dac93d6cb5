// A content call whose 2xx body goes straight to a sink, piece by piece as undici parses it (its
// dispatch handler: no Readable, no async iterator, no promise per piece), with the sink's
// backpressure pausing the socket. Any thread (the workers' download loop). Invariants: `done`
// settles exactly once and never rejects; the answer is counted once (request-counts.ts, as
// contentRequest does); a non-2xx body is collected (bounded) and classified, never given to the
// sink; after abort() or a sink's failure the sink gets nothing more.

import type { Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import { countingWords, classifyStatus, classifyThrown, contentHeaders } from './dropbox-http.ts';
import type { ContentCall, Failure } from './dropbox-http.ts';
import { countRequest } from './request-counts.ts';

/** What the sink says to a piece: take more, pause the socket until resume(), or stop the call. */
export type SinkAnswer = true | false | Failure;

export interface BodySink {
  /** A 2xx answer's status and headers: null to take its body, or why not (the call stops). */
  start(statusCode: number, headers: IncomingHttpHeaders): Failure | null;
  /** The next piece of the body (valid only during this call: copy what is kept). */
  data(chunk: Buffer): SinkAnswer;
}

/** How a streamed call ended: its whole body taken (`failure` null), or why not; status 0: no answer. */
export interface StreamedOutcome {
  statusCode: number;
  failure: Failure | null;
}

/** Bytes of a non-2xx body kept for its classification (Dropbox error bodies are small JSON). */
const ERROR_BODY_BYTES = 64 * 1024;

export class StreamedCall implements Dispatcher.DispatchHandler {
  readonly done: Promise<StreamedOutcome>;
  private settle!: (outcome: StreamedOutcome) => void;
  private abortFn: ((err?: Error) => void) | null = null;
  private resumeFn: (() => void) | null = null;
  private statusCode = 0;
  private retryAfter: string | undefined;
  /** Why the call stopped early (the sink's failure or abort()), reported instead of undici's error. */
  private stopped: Failure | null = null;
  private errorBody: Buffer[] | null = null;
  private errorBytes = 0;
  private finished = false;

  constructor(
    private readonly call: ContentCall,
    private readonly sink: BodySink,
  ) {
    this.done = new Promise((resolve) => (this.settle = resolve));
    const words = countingWords(call.dispatcher);
    const url = new URL(`${call.account.contentUrl}/2/${call.route}`);
    try {
      call.dispatcher.dispatch(
        { origin: url.origin, path: url.pathname, method: 'POST', headers: contentHeaders(call) },
        this,
      );
    } catch (err) {
      if (words) countRequest(words, call.route, 0);
      this.finish({ statusCode: 0, failure: classifyThrown(err) });
    }
  }

  /** Continues a body paused by the sink (its data() answered false). */
  resume(): void {
    const resume = this.resumeFn;
    if (resume && !this.finished) resume();
  }

  /** Stops the call: `done` reports `failure`. */
  abort(failure: Failure): void {
    if (this.finished || this.stopped) return;
    this.stopped = failure;
    if (this.abortFn) this.abortFn(new Error(failure.kind === 'fatal' || failure.kind === 'retry' ? failure.reason : 'call stopped'));
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortFn = abort;
    if (this.stopped) abort(new Error('call stopped'));
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true; // 1xx: the real answer follows
    this.statusCode = statusCode;
    this.resumeFn = resume;
    const words = countingWords(this.call.dispatcher);
    if (words) countRequest(words, this.call.route, statusCode);
    const headers = parseRawHeaders(rawHeaders);
    if (statusCode >= 300) {
      this.errorBody = [];
      const ra = headers['retry-after'];
      this.retryAfter = Array.isArray(ra) ? ra[0] : ra;
      return true;
    }
    const refused = this.sink.start(statusCode, headers);
    if (refused) {
      this.abort(refused);
      return false;
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.stopped || this.finished) return false;
    if (this.errorBody) {
      if (this.errorBytes < ERROR_BODY_BYTES) {
        const take = chunk.subarray(0, ERROR_BODY_BYTES - this.errorBytes);
        this.errorBody.push(Buffer.from(take));
        this.errorBytes += take.length;
      }
      return true;
    }
    const answer = this.sink.data(chunk);
    if (answer === true || answer === false) return answer;
    this.abort(answer);
    return false;
  }

  onComplete(): void {
    if (this.stopped) return this.finish({ statusCode: this.statusCode, failure: this.stopped });
    if (!this.errorBody) return this.finish({ statusCode: this.statusCode, failure: null });
    const text = Buffer.concat(this.errorBody).toString('utf8');
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
    this.finish({ statusCode: this.statusCode, failure: classifyStatus(this.statusCode, json, text, this.retryAfter) });
  }

  onError(err: Error): void {
    if (this.statusCode === 0) {
      const words = countingWords(this.call.dispatcher);
      if (words) countRequest(words, this.call.route, 0);
    }
    this.finish({ statusCode: this.statusCode, failure: this.stopped ?? classifyThrown(err) });
  }

  private finish(outcome: StreamedOutcome): void {
    if (this.finished) return;
    this.finished = true;
    this.settle(outcome);
  }
}

/** undici's raw header list (name, value, name, value…) as lower-case names to values. */
function parseRawHeaders(raw: Buffer[]): IncomingHttpHeaders {
  const out: Record<string, string | string[]> = Object.create(null);
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1').toLowerCase();
    const value = raw[i + 1]!.toString('latin1');
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[name] = [prev, value];
  }
  return out as IncomingHttpHeaders;
}
