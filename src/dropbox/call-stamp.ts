// When this process started a Dropbox call, sent with the call as an `X-Dropftp-Call-Start` header
// (milliseconds since the Unix epoch, from the monotonic clock: performance.timeOrigin + now()). Dropbox
// ignores a header it does not know; the local box compares it with the Retry-After windows it
// announced, so a benchmark can tell a call started after its account's 429 (the pacer's fault) from
// one that was on its way when the 429 left and arrived late (src/localbox/limits.ts).

export const CALL_START_HEADER = 'x-dropftp-call-start';

export function callStartStamp(): string {
  return (performance.timeOrigin + performance.now()).toFixed(1);
}
