// The one option parser of every sub-command: a table of flags (one entry per flag) read with
// node:util parseArgs (strict), plus what parseArgs lacks: `--help`/`-h` everywhere, flags whose
// value is optional (`--flag` or `--flag=VALUE`), and a usage listing made from the same table.
// Main thread, at start. Invariants: an unknown flag, a missing value or an unexpected argument is
// a UsageError naming it (exit 2); `--help` wins over every other problem (exit 0, usage on stdout).

import { parseArgs } from 'node:util';

export interface FlagSpec {
  /** 'boolean' takes no value; 'string' takes one (`--flag VALUE` or `--flag=VALUE`). */
  type: 'string' | 'boolean';
  /** One-letter alias (`-p`). */
  short?: string;
  /** May be given several times (values in order). */
  multiple?: boolean;
  /**
   * 'string' flags only: the value may be left out (`--flag` alone reads as ''); a value then
   * needs the `=` form, so `--flag next` never swallows the next argument.
   */
  optionalValue?: boolean;
  /** Placeholder shown in the usage (`HOST:PORT`). */
  valueName?: string;
  doc: string;
}

export type FlagTable = Readonly<Record<string, FlagSpec>>;

export type FlagValues = Record<string, string | boolean | string[] | undefined>;

export interface ParsedCommand {
  values: FlagValues;
  /** Every flag given, in command-line order (value undefined for a boolean flag). */
  given: { name: string; value: string | undefined }[];
  positionals: string[];
  /** `--help` or `-h` was given: print the usage on stdout and exit 0. */
  help: boolean;
}

/** Bad command line: exit status 2, the message, then the usage on stderr. */
export class UsageError extends Error {}

const HELP: FlagTable = { help: { type: 'boolean', short: 'h', doc: 'show this help and exit' } };

/** Parses `argv` against `table`; `maxPositionals` (default 0) bounds the bare arguments. */
export function parseCommand(argv: readonly string[], table: FlagTable, options: { maxPositionals?: number } = {}): ParsedCommand {
  const end = argv.indexOf('--');
  const flagsPart = end < 0 ? argv : argv.slice(0, end);
  if (flagsPart.includes('--help') || flagsPart.includes('-h')) return { values: {}, given: [], positionals: [], help: true };
  // `--flag` alone for an optional-value flag becomes `--flag=` (parseArgs has no optional values).
  const args = flagsPart.map((arg) => (arg.startsWith('--') && !arg.includes('=') && table[arg.slice(2)]?.optionalValue ? `${arg}=` : arg));
  if (end >= 0) args.push(...argv.slice(end));
  const spec: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [name, flag] of Object.entries({ ...table, ...HELP })) {
    spec[name] = { type: flag.type, ...(flag.short ? { short: flag.short } : {}), ...(flag.multiple ? { multiple: true } : {}) };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args, options: spec, strict: true, allowPositionals: true, tokens: true });
  } catch (err) {
    throw new UsageError(explain(err as NodeJS.ErrnoException, table));
  }
  const max = options.maxPositionals ?? 0;
  if (parsed.positionals.length > max) throw new UsageError(`unexpected argument "${parsed.positionals[max]}"`);
  const given = (parsed.tokens ?? []).flatMap((t) => (t.kind === 'option' ? [{ name: t.name, value: t.value }] : []));
  return { values: parsed.values as FlagValues, given, positionals: parsed.positionals, help: false };
}

/** parseArgs' messages, shortened to the flag and the problem. */
function explain(err: NodeJS.ErrnoException, table: FlagTable): string {
  const flag = /'(-{1,2}[^' ]+)/.exec(err.message)?.[1] ?? '';
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${flag}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      const spec = table[flag.replace(/^-+/, '')];
      if (spec?.type === 'boolean') return `${flag} takes no value`;
      if (/ambiguous/.test(err.message)) return `${flag} needs a value (one that starts with "-" goes as ${flag}=VALUE)`;
      return `${flag} needs a value`;
    }
    default:
      return err.message;
  }
}

/** The flags of `table` as usage lines (`  --listen HOST:PORT   doc`), --help last. */
export function flagLines(table: FlagTable): string {
  const rows = Object.entries({ ...table, ...HELP }).map(([name, flag]) => {
    const value = flag.type === 'string' ? (flag.optionalValue ? `[=${flag.valueName ?? 'VALUE'}]` : ` ${flag.valueName ?? 'VALUE'}`) : '';
    const names = `${flag.short ? `-${flag.short}, ` : ''}--${name}${value}${flag.multiple ? ' …' : ''}`;
    return [names, flag.doc] as const;
  });
  const width = Math.min(32, Math.max(...rows.map(([names]) => names.length)) + 2);
  return rows.map(([names, doc]) => `  ${names.padEnd(width)}${names.length >= width ? `\n  ${' '.repeat(width)}` : ''}${doc}\n`).join('');
}

/** Runs a sub-command body with the shared exit rules: usage errors exit 2 with the usage on stderr. */
export async function runCommand(name: string, usage: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${name}: ${err.message}\n${usage}`);
    return 2;
  }
}
