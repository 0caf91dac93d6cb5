// Parsing of one FTP command line into verb and argument, and of LIST/NLST's ls-style options.
// Main thread. Invariant: the argument is the raw text after the first space — nothing stripped,
// no "-x" token eaten (see docs/ftp-srv-defects.md, "quote stripping and flag eating").

import type { Command } from './session-types.ts';

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
