// The configuration schema: every option of `dropftp serve`, its kind, default, environment
// variable, flag and documentation, in one table. Main thread, read-only data. Invariants: a key is
// the option's dotted path in the YAML file; its env name and flag are derived from the key (plus
// the few short flag aliases listed here) so the three sources can never disagree; the example
// file and the README table are generated from this table (`dropftp config example`).

import type { KindSpec } from './values.ts';

export interface EntryField extends KindSpec {
  doc: string;
  required?: boolean;
}

export interface OptionSpec extends KindSpec {
  key: string;
  /** Value when no source sets it (null: off / derived at start, see doc). */
  default: unknown;
  doc: string;
  /** Extra flags besides the derived `--dotted-key-in-kebab-case` (kept from earlier releases). */
  aliases?: readonly string[];
  /** For kind 'map': the fields of each entry (the map itself is only settable in the file). */
  entry?: Readonly<Record<string, EntryField>>;
}

export const OPTIONS: readonly OptionSpec[] = [
  // service
  { key: 'listen', kind: 'hostPort', default: '0.0.0.0:2121', doc: 'FTP control connection address ([::]:2121 for IPv6).' },
  { key: 'dataDir', kind: 'string', default: './data', doc: 'Local box storage, local accounts and (by default) the users file.' },
  { key: 'usersFile', kind: 'string', nullable: true, default: null, aliases: ['--users'], doc: 'Users file (null: <dataDir>/users.yaml). Reloaded on SIGHUP.' },
  { key: 'passivePorts', kind: 'portRange', nullable: true, default: null, aliases: ['--pasv-ports'], doc: 'Passive data ports "A-B" (null: any free port).' },
  { key: 'publicHost', kind: 'string', nullable: true, default: null, doc: 'Address announced in PASV replies to non-local clients (behind NAT).' },
  { key: 'greeting', kind: 'string', default: 'dropftp ready', doc: 'Text of the 220 greeting.' },
  { key: 'shutdownGraceMs', kind: 'durationMs', default: 30_000, max: 3_600_000, aliases: ['--grace'], doc: 'On SIGTERM: how long running transfers may finish before the rest are aborted.' },
  // transfer engine
  { key: 'engine.workers', kind: 'int', nullable: true, min: 1, max: 256, default: null, doc: 'Most transfer worker threads; the pool starts with one and grows with load (null: the CPU count, at most 256).' },
  { key: 'engine.noWorkers', kind: 'bool', default: false, aliases: ['--no-workers'], doc: 'Run every transfer on the main thread (the benchmark baseline).' },
  { key: 'engine.memoryBudgetBytes', kind: 'bytes', min: 1 << 20, max: 2 ** 40, default: 512 * 1024 * 1024, doc: 'Memory for rings and upload retention, all transfers together ("512MiB").' },
  { key: 'engine.maxCallsPerSecond', kind: 'int', nullable: true, min: 1, max: 100_000, default: null, doc: 'Ceiling of Dropbox calls started per second per account (null: none; the pacer finds the limit from 429s).' },
  { key: 'engine.maxRetryAfterSec', kind: 'int', min: 1, max: 86_400, default: 300, doc: 'Longest Retry-After honoured; a larger, negative or non-numeric one is capped and logged.' },
  { key: 'engine.appendMemoryBytes', kind: 'bytes', min: 64 * 1024, max: 150 * 1024 * 1024, default: 64 * 1024 * 1024, doc: "Most unacknowledged upload bytes one STOR keeps in memory (less when the budget is shared; memory not touched before only up to 64 MiB among all uploads, at least 1 MiB each); the rest goes to the spool." },
  { key: 'engine.spoolBytes', kind: 'bytes', nullable: true, max: 2 ** 41, default: null, doc: 'Disk for upload spool files under <dataDir>/spool, all STORs together (null: a quarter of the space free there at start, at most 64 GiB; 0: memory only). Past it: backpressure.' },
  { key: 'engine.uploadLeadSec', kind: 'int', min: 1, max: 3600, default: 20, doc: "How far an upload's FTP client may run ahead of Dropbox, in seconds of its share of the upload bandwidth, and never more than 16 MiB: its 226 follows its last byte by about this (plus the closing call and commit). Lower it for clients that wait less for the reply." },
  { key: 'engine.commitLingerMs', kind: 'durationMs', max: 10_000, default: 0, doc: 'Commits that arrive while a finish_batch_v2 call is in flight go in the next batch when it returns; this long at least after the first of them (0: at once). None in flight: at once.' },
  // FTP session limits
  { key: 'session.idleTimeoutMs', kind: 'durationMs', default: 300_000, doc: 'Idle control connection closed (421) after this (0: never). Not counted during transfers.' },
  { key: 'session.dataConnectTimeoutMs', kind: 'durationMs', min: 1, default: 15_000, doc: 'How long a transfer command waits for its data connection.' },
  { key: 'session.unusedDataTimeoutMs', kind: 'durationMs', min: 1, default: 30_000, doc: 'An unclaimed passive listener or data socket is closed after this.' },
  { key: 'session.stallTimeoutMs', kind: 'durationMs', default: 120_000, doc: 'A client that moves no byte for this long while the transfer waits on it is aborted (426; 0: never); waits on Dropbox do not count.' },
  { key: 'session.maxLineBytes', kind: 'int', min: 64, max: 1 << 20, default: 8192, doc: 'Longest command line accepted.' },
  { key: 'session.maxQueuedCommands', kind: 'int', min: 1, max: 10_000, default: 64, doc: 'Pipelined commands buffered before the control socket is paused.' },
  { key: 'session.maxLoginFailures', kind: 'int', min: 1, default: 3, doc: 'Failed PASS attempts before the connection is closed.' },
  { key: 'session.loginTimeoutMs', kind: 'durationMs', default: 60_000, doc: 'A connection not logged in by then is closed (421), however busy it keeps the line (0: never).' },
  { key: 'session.tlsHandshakeTimeoutMs', kind: 'durationMs', default: 10_000, doc: 'A TLS handshake (AUTH TLS, implicit FTPS) not finished by then closes the connection (0: never).' },
  // connection and login limits (src/limits)
  { key: 'limits.maxConnections', kind: 'int', min: 1, default: 10_000, doc: 'Connections to the whole server.' },
  { key: 'limits.maxConnectionsPerAddress', kind: 'int', min: 1, default: 50, doc: 'Connections from one client address (IPv6: per prefix).' },
  { key: 'limits.maxConnectionsPerUser', kind: 'int', min: 1, default: 100, doc: 'Logged-in sessions of one user.' },
  { key: 'limits.ipv6PrefixBits', kind: 'int', min: 1, max: 128, default: 64, doc: 'IPv6 clients are counted per prefix of this many bits.' },
  { key: 'limits.loginDelayBaseMs', kind: 'durationMs', default: 500, doc: 'First failed login of an address is answered after this; doubles per failure.' },
  { key: 'limits.loginDelayMaxMs', kind: 'durationMs', default: 8000, doc: 'Cap of that growing delay.' },
  { key: 'limits.banAfterFailures', kind: 'int', min: 1, default: 10, doc: 'Failed logins of one address within failureWindowMs that ban it.' },
  { key: 'limits.failureWindowMs', kind: 'durationMs', min: 1, default: 900_000, doc: 'A failure is forgotten this long after the address\'s last failure.' },
  { key: 'limits.banMs', kind: 'durationMs', min: 1, default: 900_000, doc: 'How long a ban lasts.' },
  { key: 'limits.maxTrackedAddresses', kind: 'int', min: 1, default: 100_000, doc: 'Addresses whose failures are remembered (least recently seen forgotten first).' },
  { key: 'limits.bandwidth.downloadBytesPerSec', kind: 'bytes', nullable: true, min: 1024, default: null, doc: 'Download cap per user, all sessions together (null: none).' },
  { key: 'limits.bandwidth.uploadBytesPerSec', kind: 'bytes', nullable: true, min: 1024, default: null, doc: 'Upload cap per user, all sessions together (null: none).' },
  {
    key: 'limits.userBandwidth',
    kind: 'map',
    default: {},
    doc: 'Per-user caps replacing limits.bandwidth for the users named (file only).',
    entry: {
      downloadBytesPerSec: { kind: 'bytes', min: 1024, nullable: true, doc: 'Download cap of this user.' },
      uploadBytesPerSec: { kind: 'bytes', min: 1024, nullable: true, doc: 'Upload cap of this user.' },
    },
  },
  // FTPS (RFC 4217, explicit AUTH TLS)
  { key: 'tls.certFile', kind: 'string', nullable: true, default: null, doc: 'PEM certificate chain; with tls.keyFile enables AUTH TLS (null: no FTPS).' },
  { key: 'tls.keyFile', kind: 'string', nullable: true, default: null, doc: 'PEM private key of tls.certFile.' },
  { key: 'tls.required', kind: 'bool', default: false, doc: 'Refuse login on a control connection that is not TLS.' },
  { key: 'tls.implicitPort', kind: 'int', nullable: true, max: 65535, default: null, doc: 'Second listener speaking TLS from the first byte (implicit FTPS, usually 990; null: off).' },
  { key: 'tls.requireSessionReuse', kind: 'bool', default: false, doc: 'Refuse (425) a PROT P data connection that does not resume the control connection\'s TLS session (like vsftpd require_ssl_reuse; curl, lftp and FileZilla resume).' },
  // behind a load balancer
  { key: 'proxyProtocol.enabled', kind: 'bool', default: false, aliases: ['--proxy-protocol'], doc: 'Expect a PROXY protocol v1/v2 header on every control connection.' },
  { key: 'proxyProtocol.headerTimeoutMs', kind: 'durationMs', min: 1, default: 5000, doc: 'A connection whose PROXY header is not complete by then is closed.' },
  { key: 'proxyProtocol.trustedProxies', kind: 'stringList', default: [], doc: 'Addresses or CIDR blocks allowed to send PROXY headers (empty: any; comma-separated in env/flags).' },
  // the embedded local box (its own server: `dropftp localbox --rate-limit … --write-lock=…`)
  { key: 'localbox.rateLimit', kind: 'rateLimit', nullable: true, default: null, doc: 'Dropbox\'s per-account call-rate limit in the embedded local box, "RATE[:BURST]" calls/s (refused: 429 too_many_requests; null: off).' },
  { key: 'localbox.writeLock', kind: 'durationMs', nullable: true, max: 60_000, default: null, doc: 'Dropbox\'s namespace write lock in the embedded local box: each commit, move, copy, delete, create_folder holds it this long (e.g. 50; null: off).' },
  // admin listener
  { key: 'admin.listen', kind: 'hostPort', nullable: true, default: null, aliases: ['--admin'], doc: 'Admin listener for /metrics, /healthz and the status page, HOST:PORT (null: off; keep it on 127.0.0.1 and reach it by SSH tunnel).' },
  { key: 'admin.tokenFile', kind: 'string', nullable: true, default: null, doc: 'File holding the status page token (DROPFTP_ADMIN_TOKEN wins; never a flag). Required for the page when admin.listen is not loopback.' },
  { key: 'admin.hosts', kind: 'stringList', default: [], doc: 'Host names the status page answers to besides the listener address (DNS-rebinding guard; comma-separated in env/flags).' },
  { key: 'admin.requireToken', kind: 'bool', default: false, doc: 'Require the token for the status page on a loopback listener too (behind a local reverse proxy).' },
  // logs
  { key: 'log.level', kind: 'enum', values: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], default: 'info', doc: 'Lowest level written.' },
  { key: 'log.format', kind: 'enum', values: ['auto', 'json', 'pretty'], default: 'auto', doc: 'json: one JSON object a line; pretty: readable lines; auto: pretty on a terminal, else json.' },
  // Dropbox accounts
  { key: 'credentialsFile', kind: 'string', nullable: true, default: null, doc: 'Dropbox accounts (app key, refresh token, base URLs) written by `dropftp auth` (mode 0600; null: <dataDir>/credentials.yaml).' },
];

/** Keys that no longer exist, and what replaced them: a file key, variable or flag naming one is refused with this. */
export const REMOVED_OPTIONS: Readonly<Record<string, string>> = {
  'engine.maxRequestsPerAccount': 'calls are paced per account, see engine.maxCallsPerSecond',
  'engine.fairRoundMs': 'transfers are no longer sliced (a download is one call, bandwidth is shared by the rings), see engine.maxCallsPerSecond',
  'engine.fairRoundBytes': 'transfers are no longer sliced, see engine.appendMemoryBytes and engine.spoolBytes',
  'engine.minSliceBytes': 'transfers are no longer sliced, see engine.appendMemoryBytes and engine.spoolBytes',
};

/** The message for a removed key, given as a file key, an environment variable or a flag; null if none. */
export function removedOption(given: string): string | null {
  for (const [key, replacement] of Object.entries(REMOVED_OPTIONS)) {
    if (given === key || given === envName(key) || given === flagName(key)) return `${key} was removed: ${replacement}`;
  }
  return null;
}

/** The status page token: a secret, so an environment variable (or admin.tokenFile), never a flag (/proc shows argv). */
export const ADMIN_TOKEN_ENV = 'DROPFTP_ADMIN_TOKEN';

/** DROPFTP_* variables that are not options of the schema (other sub-commands, secrets): ignored, not rejected. */
export const OTHER_COMMANDS_ENV: ReadonlySet<string> = new Set(['DROPFTP_APP_KEY', ADMIN_TOKEN_ENV]);

export const OPTION_BY_KEY: ReadonlyMap<string, OptionSpec> = new Map(OPTIONS.map((o) => [o.key, o]));

const kebab = (s: string): string => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** `limits.maxConnectionsPerAddress` → `DROPFTP_LIMITS_MAX_CONNECTIONS_PER_ADDRESS`. */
export function envName(key: string): string {
  return 'DROPFTP_' + key.split('.').map((part) => kebab(part).replace(/-/g, '_').toUpperCase()).join('_');
}

/** `limits.maxConnectionsPerAddress` → `--limits-max-connections-per-address`. */
export function flagName(key: string): string {
  return '--' + key.split('.').map(kebab).join('-');
}

/** Every flag (derived and aliases) → its option. */
export const OPTION_BY_FLAG: ReadonlyMap<string, OptionSpec> = new Map(
  OPTIONS.filter((o) => o.kind !== 'map').flatMap((o) => [flagName(o.key), ...(o.aliases ?? [])].map((flag) => [flag, o] as const)),
);

export const OPTION_BY_ENV: ReadonlyMap<string, OptionSpec> = new Map(OPTIONS.filter((o) => o.kind !== 'map').map((o) => [envName(o.key), o]));
