// The parts of ftp-srv 4.6.3 (the protocol base the design names) that dropftp uses, by
// composition: its default reply texts and its handlers for the verbs it implements soundly (NOOP,
// SYST, MODE, STRU, ALLO). Main thread. Invariants: loads only ftp-srv's messages and the
// registration files of those five verbs (never its server or connection classes, whose
// constructors have process-wide side effects, nor its command registry, which loads every command
// and with them lodash, bluebird and moment: ~15 MiB and ~0.3 s of start-up for five one-line
// handlers); a borrowed handler sees nothing of a session but reply(). docs/ftp-srv-defects.md lists
// what of ftp-srv dropftp replaced, and why.

import { createRequire } from 'node:module';
import type { CommandSpec, ReplyLine, ReplyOptions } from './session-types.ts';

const require = createRequire(import.meta.url);

/** One entry of ftp-srv's command registry (src/commands/registry.js). */
interface FtpSrvCommandSpec {
  directive: string | string[];
  handler: (this: { reply(options: number | ReplyOptions, ...lines: ReplyLine[]): Promise<void> }, args: { command: { directive: string; arg: string | null; flags: string[]; raw: string } }) => unknown;
  syntax: string;
  description: string;
  flags?: { no_auth?: boolean; feat?: string; obsolete?: boolean };
}

/** ftp-srv's registration file of one verb (src/commands/registration/<verb>.js). */
function ftpSrvCommand(name: string): FtpSrvCommandSpec {
  return require(`ftp-srv/src/commands/registration/${name.toLowerCase()}.js`) as FtpSrvCommandSpec;
}

/** ftp-srv's default text for each reply code (used when a reply gives none). */
export const DEFAULT_REPLY_TEXT = require('ftp-srv/src/messages.js') as Readonly<Record<number, string>>;

/** Verbs whose ftp-srv handler dropftp runs as is. */
export const BORROWED_VERBS = ['NOOP', 'SYST', 'MODE', 'STRU', 'ALLO'] as const;

/** A command spec that runs ftp-srv's registered handler for `name`, with only reply() of the session. */
export function fromFtpSrv(name: (typeof BORROWED_VERBS)[number], extra: Partial<CommandSpec> = {}): CommandSpec {
  const original = ftpSrvCommand(name);
  if (original.directive !== name) throw new Error(`ftp-srv's ${name} registration names ${String(original.directive)}`);
  return {
    name,
    noAuth: original.flags?.no_auth === true,
    syntax: original.syntax.replace('{{cmd}}', name),
    description: original.description,
    ...extra,
    handler: async (session, command) => {
      const ftpSrvCommand = { directive: command.directive, arg: command.arg === '' ? null : command.arg, flags: [], raw: `${command.directive} ${command.arg}` };
      const replies = { reply: (options: number | ReplyOptions, ...lines: ReplyLine[]) => session.reply(options, ...lines) };
      await original.handler.call(replies, { command: ftpSrvCommand });
    },
  };
}
