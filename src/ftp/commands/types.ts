// The shape of one FTP command handler and of a parsed command line. Main thread. Invariant: the
// argument is the raw text after the first space — nothing stripped, no "-x" token eaten (ftp-srv
// removed every '"' and ate "-x" tokens as flags: defect "quote stripping and flag eating").

import type { FtpSession } from '../connection.ts';

export interface Command {
  /** Upper-cased verb as sent (an alias such as XMKD stays XMKD). */
  directive: string;
  /** Everything after the first space, verbatim ('' when none). */
  arg: string;
}

export interface CommandSpec {
  /** Canonical verb; aliases (XMKD for MKD …) resolve to the same spec. */
  name: string;
  aliases?: readonly string[];
  /** Verbs whose blacklisting also blocks this one (APPE and STOU write like STOR). */
  guardedBy?: readonly string[];
  /** Allowed before login. */
  noAuth?: boolean;
  /** May run while a transfer is in progress (RFC 959 4.1.3: ABOR, STAT, QUIT; and NOOP). */
  urgent?: boolean;
  /** Advertised in FEAT (one line each). */
  feat?: readonly string[];
  syntax: string;
  description: string;
  handler(session: FtpSession, command: Command): Promise<void> | void;
}

export function parseCommand(line: string): Command {
  const space = line.indexOf(' ');
  const directive = (space === -1 ? line : line.slice(0, space)).trim().toUpperCase();
  const arg = space === -1 ? '' : line.slice(space + 1);
  return { directive, arg };
}

/**
 * LIST and NLST accept ls-style options before the path ("LIST -la dir", "LIST -a"): clients send
 * them and expect them ignored. Only leading tokens made of letters (and 1) after one '-' are
 * taken; "--" ends them, so a name that starts with '-' is reached as "LIST -- -x" (or by any path
 * that does not start with '-', such as "./-x" or "/dir/-x"). MLSD/MLST take no options.
 */
export function splitListOptions(arg: string): { options: string; path: string } {
  const match = /^((?:-[A-Za-z1]+(?: +|$))*)(?:--(?: +|$))?(.*)$/s.exec(arg)!;
  return { options: match[1]!.trim(), path: match[2]! };
}
