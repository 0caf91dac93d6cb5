// Public face of the limits module: connection caps, login-failure delay and bans (AccessLimiter),
// per-user bandwidth caps (BandwidthLimits, TokenBucket). Main thread. Invariant: nothing here
// does I/O or keeps the process alive by itself.

export { AccessLimiter, ConnectionTicket, type Admission, type LimiterStats, type LoginFailure, type Refusal, type RefusalReason } from './access-limiter.ts';
export { addressKey } from './address-key.ts';
export { BandwidthLimits, type Direction } from './bandwidth.ts';
export { LIMITS_DEFAULTS, NO_LIMITS, resolveLimits, type BandwidthCap, type LimitsOptions, type ResolvedLimits } from './options.ts';
export { TokenBucket, type TokenBucketOptions } from './token-bucket.ts';
export { throttleSessionFs } from './throttled-fs.ts';
