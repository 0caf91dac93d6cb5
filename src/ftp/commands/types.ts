// The command handlers' vocabulary, in one import: the spec and command shapes (session-types.ts)
// and the line parsers (command-line.ts). Main thread (types and pure functions only).

export type { Command, CommandSpec, FtpSession } from '../session-types.ts';
export { parseCommand, splitListOptions } from '../command-line.ts';
