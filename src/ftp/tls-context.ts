// FTPS plumbing: the one SecureContext of a server, built once from PEM files at start-up, and the
// server side of a TLS connection over an accepted socket (implicit FTPS, AUTH TLS). Main thread.
// Invariants: one context serves the control connections of both listeners and every data
// connection, so its session tickets let a client resume its control session on its data
// connections (RFC 4217 10.2; curl, lftp and FileZilla ask for that); a bad file throws
// DROPFTP_ERR_CONFIG naming the option; nothing here reads a file after start-up.

import { constants } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext, type SecureContextOptions } from 'node:tls';
import { createSecureContext } from 'node:tls';
import { DropftpError } from '../errors.ts';

export interface TlsFileOptions {
  /** PEM certificate chain (option tlsCertFile). */
  tlsCertFile: string;
  /** PEM private key (option tlsKeyFile). */
  tlsKeyFile: string;
}

function readPem(option: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new DropftpError('DROPFTP_ERR_CONFIG', `${option}: cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** The context options for a certificate and key on disk (TLS 1.2 at least). */
export function tlsOptionsFromFiles(files: TlsFileOptions): SecureContextOptions {
  const options: SecureContextOptions = {
    cert: readPem('tlsCertFile', files.tlsCertFile),
    key: readPem('tlsKeyFile', files.tlsKeyFile),
    minVersion: 'TLSv1.2',
  };
  try {
    createSecureContext(options); // fail at start-up, naming the options, not at the first AUTH TLS
  } catch (err) {
    throw new DropftpError('DROPFTP_ERR_CONFIG', `tlsCertFile/tlsKeyFile: ${(err as Error).message}`, { cause: err });
  }
  return options;
}

/**
 * The server's one SecureContext: the given options with renegotiation refused (a client could ask
 * for one private-key operation on the main thread after another; Node's own limit only emits an
 * error, which left the connection open).
 */
export function serverSecureContext(options: SecureContextOptions): SecureContext {
  return createSecureContext({ ...options, secureOptions: (options.secureOptions ?? 0) | constants.SSL_OP_NO_RENEGOTIATION });
}

/**
 * Starts the server side of TLS over an accepted (possibly paused) socket; errors are swallowed
 * here and surface as 'close' (a failed handshake closes the connection, nothing more); a peer
 * that does not finish its handshake within handshakeTimeoutMs is cut (tls.Server's own
 * handshakeTimeout does not apply to a TLSSocket built by hand); 0: no limit.
 */
export function acceptTls(raw: Socket, context: SecureContext, handshakeTimeoutMs = 10_000): TLSSocket {
  const secure = new TLSSocket(raw, { isServer: true, secureContext: context });
  // Any TLS error ends the connection (one that Node only reports, as a renegotiation flood's, too).
  secure.on('error', () => secure.destroy());
  if (!(handshakeTimeoutMs > 0)) return secure;
  const timer = setTimeout(() => secure.destroy(), handshakeTimeoutMs);
  timer.unref();
  const done = (): void => clearTimeout(timer);
  secure.once('secure', done);
  secure.once('close', done);
  return secure;
}
