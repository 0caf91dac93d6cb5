// The flags of `dropftp serve` (and `dropftp config show`), made from the configuration schema
// (src/config/schema.ts, the single source of flags, env names and docs) as a table for the shared
// parser (args.ts). Main thread, at start. Invariant: every schema flag and alias is here, typed
// by its kind; what the parser accepted goes to the loader as `--flag=value`, in command-line order.

import { unknownKey } from '../config/file.ts';
import { OPTION_BY_FLAG } from '../config/schema.ts';
import { UsageError, parseCommand, type FlagTable, type ParsedCommand } from './args.ts';

/** `--config FILE` plus every option of the schema; bool options take an optional value. */
export const SERVE_FLAGS: FlagTable = Object.freeze({
  config: { type: 'string', valueName: 'FILE', doc: 'YAML configuration file (or env DROPFTP_CONFIG)' },
  ...Object.fromEntries(
    [...OPTION_BY_FLAG].map(([flag, option]) => [
      flag.slice(2),
      option.kind === 'bool' ? { type: 'string', optionalValue: true, valueName: 'BOOL', doc: option.doc } : { type: 'string', valueName: option.kind.toUpperCase(), doc: option.doc },
    ]),
  ),
});

export interface ServeArgs {
  help: boolean;
  /** The flags as the loader reads them (`--flag=value`; a bare bool flag is `=true`). */
  argv: string[];
}

/** Parses serve's command line; a UsageError names an unknown flag (with the nearest known one). */
export function parseServeArgs(argv: readonly string[]): ServeArgs {
  let parsed: ParsedCommand;
  try {
    parsed = parseCommand(argv, SERVE_FLAGS);
  } catch (err) {
    const unknown = err instanceof UsageError ? /^unknown option (--\S+)$/.exec(err.message) : null;
    if (unknown) throw new UsageError(`${unknown[1]}: ${unknownKey(unknown[1]!, Object.keys(SERVE_FLAGS).map((f) => `--${f}`)).replace('option', 'flag')}`);
    throw err;
  }
  if (parsed.help) return { help: true, argv: [] };
  return { help: false, argv: parsed.given.map(({ name, value }) => `--${name}=${value === '' && OPTION_BY_FLAG.get(`--${name}`)?.kind === 'bool' ? 'true' : (value ?? '')}`) };
}
