// Who may connect and log in: connection caps (server, address, user), a login-failure delay that
// doubles per failure of an address, and a temporary ban of an address after repeated failures.
// Main thread (the FTP layer calls it on accept, before/after password checks, and on close).
// Invariants: every event is O(1); memory is bounded (live counts by live connections, failure
// records by an LRU of maxTrackedAddresses); a ticket releases its counts exactly once.

import { ERRORS } from '../errors.ts';
import { addressKey } from './address-key.ts';
import { LruMap } from './lru-map.ts';
import { resolveLimits, type LimitsOptions, type ResolvedLimits } from './options.ts';

export type RefusalReason = 'banned' | 'server_full' | 'address_full' | 'user_full';

export interface Refusal {
  reason: RefusalReason;
  code: 'DROPFTP_ERR_TOO_MANY_CONNECTIONS' | 'DROPFTP_ERR_BANNED';
  /** The whole FTP reply line to send (without CRLF) before closing the control connection. */
  reply: string;
}

export type Admission = { ok: true; ticket: ConnectionTicket } | { ok: false; refusal: Refusal };

export interface LoginFailure {
  /** Wait this long before answering 530 (the session stays silent meanwhile). */
  delayMs: number;
  /** The address is now banned: answer, then close the connection. */
  banned: boolean;
}

interface FailureRecord {
  failures: number;
  lastFailureMs: number;
  bannedUntilMs: number;
}

export interface LimiterStats {
  connections: number;
  addresses: number;
  users: number;
  trackedAddresses: number;
  refused: Record<RefusalReason, number>;
  loginFailures: number;
  bans: number;
}

function refusal(reason: RefusalReason): Refusal {
  const code = reason === 'banned' ? 'DROPFTP_ERR_BANNED' : 'DROPFTP_ERR_TOO_MANY_CONNECTIONS';
  return { reason, code, reply: `${ERRORS[code].ftp} ${ERRORS[code].text}` };
}

function bump(map: Map<string, number>, key: string, by: number): void {
  const n = (map.get(key) ?? 0) + by;
  if (n <= 0) map.delete(key);
  else map.set(key, n);
}

export class AccessLimiter {
  #limits: ResolvedLimits;
  readonly #now: () => number;
  readonly #perAddress = new Map<string, number>();
  readonly #perUser = new Map<string, number>();
  readonly #failures: LruMap<string, FailureRecord>;
  #connections = 0;
  readonly #stats = { refused: { banned: 0, server_full: 0, address_full: 0, user_full: 0 }, loginFailures: 0, bans: 0 };

  constructor(options: LimitsOptions = {}, now: () => number = Date.now) {
    this.#limits = resolveLimits(options); // idempotent: a ResolvedLimits resolves to itself
    this.#now = now;
    this.#failures = new LruMap(this.#limits.maxTrackedAddresses);
  }

  get limits(): ResolvedLimits {
    return this.#limits;
  }

  /**
   * New limits (SIGHUP): live counts, failure records and bans are kept; connections already over a
   * lowered cap stay, new ones are refused until the count falls below it. Throws on bad options,
   * leaving the old limits in force.
   */
  reconfigure(options: LimitsOptions): void {
    const next = resolveLimits(options);
    this.#limits = next;
    this.#failures.resize(next.maxTrackedAddresses);
  }

  /** Called on accept with socket.remoteAddress; on refusal, send `refusal.reply` and close. */
  connect(remoteAddress: string | undefined): Admission {
    const key = addressKey(remoteAddress, this.limits.ipv6PrefixBits);
    if (this.isBanned(key)) return this.#refuse('banned');
    if (this.#connections >= this.limits.maxConnections) return this.#refuse('server_full');
    if ((this.#perAddress.get(key) ?? 0) >= this.limits.maxConnectionsPerAddress) return this.#refuse('address_full');
    this.#connections++;
    bump(this.#perAddress, key, 1);
    return { ok: true, ticket: new ConnectionTicket(this, key) };
  }

  /** True while the address key (see addressKey) is banned; a banned address's record stays fresh. */
  isBanned(key: string): boolean {
    const record = this.#failures.peek(key);
    if (!record || record.bannedUntilMs <= this.#now()) return false;
    this.#failures.get(key);
    return true;
  }

  stats(): LimiterStats {
    return {
      connections: this.#connections,
      addresses: this.#perAddress.size,
      users: this.#perUser.size,
      trackedAddresses: this.#failures.size,
      refused: { ...this.#stats.refused },
      loginFailures: this.#stats.loginFailures,
      bans: this.#stats.bans,
    };
  }

  #refuse(reason: RefusalReason): Admission {
    this.#stats.refused[reason]++;
    return { ok: false, refusal: refusal(reason) };
  }

  /** @internal ConnectionTicket's side. */
  _userLogin(user: string, previous: string | null): Refusal | null {
    if (previous === user) return null;
    if ((this.#perUser.get(user) ?? 0) >= this.limits.maxConnectionsPerUser) {
      this.#stats.refused.user_full++;
      return refusal('user_full');
    }
    if (previous !== null) bump(this.#perUser, previous, -1);
    bump(this.#perUser, user, 1);
    return null;
  }

  /** @internal */
  _userLogout(user: string): void {
    bump(this.#perUser, user, -1);
  }

  /** @internal */
  _loginFailed(key: string): LoginFailure {
    const now = this.#now();
    this.#stats.loginFailures++;
    let record = this.#failures.get(key);
    if (!record) {
      record = { failures: 0, lastFailureMs: now, bannedUntilMs: 0 };
      this.#failures.set(key, record);
    }
    if (now - record.lastFailureMs > this.limits.failureWindowMs) record.failures = 0;
    record.failures++;
    record.lastFailureMs = now;
    const { loginDelayBaseMs: base, loginDelayMaxMs: max } = this.limits;
    const delayMs = Math.min(max, base * 2 ** Math.min(record.failures - 1, 30));
    if (record.failures >= this.limits.banAfterFailures) {
      record.failures = 0;
      record.bannedUntilMs = now + this.limits.banMs;
      this.#stats.bans++;
      return { delayMs, banned: true };
    }
    return { delayMs, banned: false };
  }

  /** @internal */
  _release(key: string, user: string | null): void {
    this.#connections--;
    bump(this.#perAddress, key, -1);
    if (user !== null) bump(this.#perUser, user, -1);
  }
}

/** One accepted control connection's hold on the limiter. */
export class ConnectionTicket {
  readonly #limiter: AccessLimiter;
  readonly addressKey: string;
  #user: string | null = null;
  #released = false;

  constructor(limiter: AccessLimiter, key: string) {
    this.#limiter = limiter;
    this.addressKey = key;
  }

  get user(): string | null {
    return this.#user;
  }

  /** Before checking a password: a refusal when the address got banned meanwhile (skip the hash). */
  checkLogin(): Refusal | null {
    return this.#limiter.isBanned(this.addressKey) ? refusal('banned') : null;
  }

  /** After a correct password: counts the session against the user's cap, or refuses it. */
  loginSucceeded(user: string): Refusal | null {
    if (this.#released) return null;
    const refused = this.#limiter._userLogin(user, this.#user);
    if (!refused) this.#user = user;
    return refused;
  }

  /** The session dropped its login (USER again): the user's count goes back; the connection stays counted. */
  logout(): void {
    if (this.#released || this.#user === null) return;
    this.#limiter._userLogout(this.#user);
    this.#user = null;
  }

  /** After a wrong password (or unknown user): how long to wait before 530, and whether to close. */
  loginFailed(): LoginFailure {
    return this.#limiter._loginFailed(this.addressKey);
  }

  /** On close of the control connection; idempotent. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#limiter._release(this.addressKey, this.#user);
  }
}
