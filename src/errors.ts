// The one registry of dropftp error codes. Any thread. Invariants: a code is never reused or
// renamed; each maps to the FTP reply a client sees; errors cross threads as { code, message }
// (never as Error objects) and are rebuilt here with fromWire().

export const ERRORS = {
  // transfers and Dropbox
  DROPFTP_ERR_NOT_FOUND: { ftp: 550, text: 'No such file or directory' },
  DROPFTP_ERR_NOT_A_FILE: { ftp: 550, text: 'Not a regular file' },
  DROPFTP_ERR_NOT_A_FOLDER: { ftp: 550, text: 'Not a directory' },
  DROPFTP_ERR_EXISTS: { ftp: 550, text: 'File or directory exists' },
  DROPFTP_ERR_FOLDER_NOT_EMPTY: { ftp: 550, text: 'Directory not empty' },
  DROPFTP_ERR_BAD_PATH: { ftp: 553, text: 'File name not allowed' },
  DROPFTP_ERR_PERMISSION: { ftp: 550, text: 'Permission denied' },
  DROPFTP_ERR_INSUFFICIENT_SPACE: { ftp: 552, text: 'Insufficient storage space' },
  DROPFTP_ERR_RATE_LIMITED: { ftp: 421, text: 'Service busy, try again later' },
  DROPFTP_ERR_UPSTREAM: { ftp: 451, text: 'Storage service error, try again' },
  DROPFTP_ERR_UPSTREAM_AUTH: { ftp: 451, text: 'Storage service refused our credentials' },
  DROPFTP_ERR_UPSTREAM_MALFORMED: { ftp: 451, text: 'Storage service sent an invalid answer, try again' },
  DROPFTP_ERR_INTEGRITY: { ftp: 451, text: 'Data failed its integrity check; transfer aborted' },
  DROPFTP_ERR_COMMIT_FAILED: { ftp: 451, text: 'Upload could not be committed; nothing was saved' },
  DROPFTP_ERR_ABORTED: { ftp: 426, text: 'Transfer aborted' },
  DROPFTP_ERR_CLIENT_GONE: { ftp: 426, text: 'Data connection closed; transfer aborted' },
  DROPFTP_ERR_STALLED: { ftp: 426, text: 'Transfer stalled; aborted' },
  DROPFTP_ERR_BAD_OFFSET: { ftp: 554, text: 'Invalid restart offset' },
  // REST n / resumed uploads count stored bytes; in TYPE A the client counts CRLF wire bytes (vsftpd: same refusal).
  DROPFTP_ERR_ASCII_RESUME: { ftp: 550, text: 'Resume of ASCII (TYPE A) transfers is not supported; use TYPE I' },
  DROPFTP_ERR_WORKER_CRASHED: { ftp: 451, text: 'Transfer worker failed; transfer aborted' },
  DROPFTP_ERR_SHUTTING_DOWN: { ftp: 421, text: 'Server shutting down' },
  DROPFTP_ERR_OVERLOADED: { ftp: 421, text: 'Too many transfers, try again later' },
  DROPFTP_ERR_INTERNAL: { ftp: 451, text: 'Local error in processing' },
  // The upload spool (engine.spoolBytes under <dataDir>/spool) hit a full disk: nothing was committed.
  DROPFTP_ERR_LOCAL_SPACE: { ftp: 452, text: 'Insufficient storage space on the server; nothing was saved' },
  // FTP session
  DROPFTP_ERR_LOGIN_FAILED: { ftp: 530, text: 'Login incorrect' },
  DROPFTP_ERR_NOT_LOGGED_IN: { ftp: 530, text: 'Please login with USER and PASS' },
  DROPFTP_ERR_TOO_MANY_CONNECTIONS: { ftp: 421, text: 'Too many connections' },
  DROPFTP_ERR_BANNED: { ftp: 421, text: 'Too many failed logins from your address; try again later' },
  DROPFTP_ERR_TLS_REQUIRED: { ftp: 530, text: 'TLS required before login' },
  DROPFTP_ERR_BAD_COMMAND: { ftp: 501, text: 'Syntax error in parameters or arguments' },
  DROPFTP_ERR_NO_DATA_CONNECTION: { ftp: 425, text: "Can't open data connection" },
  DROPFTP_ERR_IDLE_TIMEOUT: { ftp: 421, text: 'Idle timeout, closing control connection' },
  DROPFTP_ERR_LOGIN_TIMEOUT: { ftp: 421, text: 'Login timeout, closing control connection' },
  DROPFTP_ERR_TOO_MANY_LOGIN_FAILURES: { ftp: 421, text: 'Too many failed logins' },
  DROPFTP_ERR_LINE_TOO_LONG: { ftp: 500, text: 'Command line too long' },
  // RFC 959 4.2's 500: a line whose verb is missing or not one of ours (502 stays for RFC 959 verbs not implemented).
  DROPFTP_ERR_NO_VERB: { ftp: 500, text: 'Syntax error, command unrecognized' },
  DROPFTP_ERR_UNKNOWN_COMMAND: { ftp: 502, text: 'Command not implemented' },
  DROPFTP_ERR_BAD_SEQUENCE: { ftp: 503, text: 'Bad sequence of commands' },
  DROPFTP_ERR_PARAMETER_NOT_SUPPORTED: { ftp: 504, text: 'Command not implemented for that parameter' },
  // RFC 2428 2: the detail is the list of families, so the reply reads "..., use (1,2)".
  DROPFTP_ERR_NETWORK_PROTOCOL: { ftp: 522, text: 'Network protocol not supported, use' },
  DROPFTP_ERR_PROTECTION_LEVEL: { ftp: 536, text: 'Requested PROT level not supported' },
  // configuration
  DROPFTP_ERR_CONFIG: { ftp: 451, text: 'Server configuration error' },
  // another process holds the local box's data directory (src/localbox/data-lock.ts)
  DROPFTP_ERR_DATA_DIR_LOCKED: { ftp: 451, text: 'Storage directory in use by another server' },
} as const;

export type ErrorCode = keyof typeof ERRORS;

export interface WireError {
  code: ErrorCode;
  message: string;
}

export interface DropftpErrorOptions {
  cause?: unknown;
  /**
   * Added to the client text in parentheses: a fact of ours that tells the client what to do
   * ("use EPSV", "use (1)"); never a server path, a Dropbox internal or anything the client sent.
   */
  clientDetail?: string;
}

/** An error with a registered code. `message` is for logs; `clientText` is what an FTP client sees. */
export class DropftpError extends Error {
  readonly code: ErrorCode;
  readonly clientDetail: string | undefined;
  constructor(code: ErrorCode, message: string = ERRORS[code].text, options?: DropftpErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DropftpError';
    this.code = code;
    this.clientDetail = options?.clientDetail;
  }

  get ftpCode(): number {
    return ERRORS[this.code].ftp;
  }

  /** Reply text safe to show a client: never a server path or a Dropbox internal. */
  get clientText(): string {
    const text = ERRORS[this.code].text;
    return this.clientDetail ? `${text} (${this.clientDetail})` : text;
  }

  toWire(): WireError {
    return { code: this.code, message: this.message };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERRORS, value);
}

/** Rebuilds an error that crossed a thread boundary; unknown codes become DROPFTP_ERR_INTERNAL. */
export function fromWire(wire: { code?: unknown; message?: unknown }): DropftpError {
  const code = isErrorCode(wire.code) ? wire.code : 'DROPFTP_ERR_INTERNAL';
  return new DropftpError(code, typeof wire.message === 'string' ? wire.message : ERRORS[code].text);
}

/** Wraps anything thrown into a DropftpError (already-coded errors pass through). */
export function toDropftpError(err: unknown, fallback: ErrorCode = 'DROPFTP_ERR_INTERNAL'): DropftpError {
  if (err instanceof DropftpError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new DropftpError(fallback, message, { cause: err });
}
