// Loads the configuration once at start-up: defaults < YAML file < DROPFTP_* environment < flags,
// each value parsed by the same schema, every problem collected and reported together, each naming
// its option and where it came from (`dropftp.yaml:12: limits.banMs: …`, `DROPFTP_X: …`, `--x: …`).
// Main thread. Invariants: unknown keys, variables and flags are errors; the result is frozen;
// relative paths from the file are relative to the file, others to the working directory.

import { readFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { DropftpError } from '../errors.ts';
import { TrustedProxies } from '../ftp/proxy-protocol.ts';
import { readConfigText, unknownKey, type FileValue } from './file.ts';
import { OPTIONS, OPTION_BY_ENV, OPTION_BY_FLAG, OTHER_COMMANDS_ENV, envName, flagName, type OptionSpec } from './schema.ts';
import type { ConfigSource, DropftpConfig, LoadedConfig } from './types.ts';
import { ValueError, parseValue, shown } from './values.ts';

export const CONFIG_ENV = 'DROPFTP_CONFIG';
const PATH_KEYS = new Set(['dataDir', 'usersFile', 'tls.certFile', 'tls.keyFile', 'credentialsFile', 'admin.tokenFile']);
const ENTRY_NAME = /^[A-Za-z0-9._@-]{1,64}$/;

/** Bad configuration: `problems` holds one line per problem, each naming option and source. */
export class ConfigError extends DropftpError {
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super('DROPFTP_ERR_CONFIG', problems.join('\n'));
    this.problems = problems;
  }
}

export interface ConfigInput {
  /** Command-line flags after the sub-command. */
  argv?: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** A file to read when neither --config nor DROPFTP_CONFIG names one. */
  file?: string | null;
  cwd?: string;
}

interface Given {
  value: unknown;
  source: ConfigSource;
  where: string;
  fileValue?: FileValue;
}

/** Splits argv into option flags (→ key) and --config; unknown flags are problems. */
function readFlags(argv: readonly string[], problems: string[]): { flags: Map<string, Given>; configFile: string | null } {
  const flags = new Map<string, Given>();
  let configFile: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const name = eq > 0 && arg.startsWith('--') ? arg.slice(0, eq) : arg;
    const inline = eq > 0 && arg.startsWith('--') ? arg.slice(eq + 1) : undefined;
    const option = OPTION_BY_FLAG.get(name);
    if (name !== '--config' && !option) {
      problems.push(`${name}: ${unknownKey(name, ['--config', ...OPTION_BY_FLAG.keys()]).replace('option', 'flag')}`);
      if (inline === undefined && argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) i++; // its value
      continue;
    }
    let value: string | undefined = inline;
    if (value === undefined && option?.kind === 'bool' && (argv[i + 1] === undefined || argv[i + 1]!.startsWith('--'))) value = 'true';
    if (value === undefined) value = argv[++i];
    if (value === undefined) {
      problems.push(`${name}: needs a value`);
      continue;
    }
    if (option) flags.set(option.key, { value, source: 'flag', where: name });
    else configFile = value;
  }
  return { flags, configFile };
}

function readEnv(env: NodeJS.ProcessEnv, problems: string[]): Map<string, Given> {
  const out = new Map<string, Given>();
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('DROPFTP_') || name === CONFIG_ENV || OTHER_COMMANDS_ENV.has(name) || value === undefined) continue;
    const option = OPTION_BY_ENV.get(name);
    if (!option) problems.push(`${name}: ${unknownKey(name, OPTION_BY_ENV.keys()).replace('option', 'environment variable')}`);
    else out.set(option.key, { value, source: 'env', where: name });
  }
  return out;
}

function parseMap(option: OptionSpec, given: Given, problems: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const map = parseValue(option, given.value) as Record<string, unknown>;
  const lines = given.fileValue?.fieldLines ?? {};
  const at = (entry: string, field = ''): string => {
    const line = lines[entry]?.[field] ?? lines[entry]?.[''] ?? given.fileValue?.line;
    return given.source === 'file' && line !== undefined ? given.where.replace(/:\d+$/, `:${line}`) : given.where;
  };
  for (const [name, raw] of Object.entries(map)) {
    if (!ENTRY_NAME.test(name)) problems.push(`${at(name)}: ${option.key}.${name}: bad name (letters, digits, . _ @ -)`);
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      problems.push(`${at(name)}: ${option.key}.${name}: expected a map, got ${shown(raw)}`);
      continue;
    }
    const entry: Record<string, unknown> = {};
    for (const [field, spec] of Object.entries(option.entry!)) {
      const value = (raw as Record<string, unknown>)[field];
      if (value === undefined) {
        if (spec.required) problems.push(`${at(name)}: ${option.key}.${name}.${field}: required`);
        entry[field] = null;
        continue;
      }
      try {
        entry[field] = parseValue(spec, value);
      } catch (err) {
        if (!(err instanceof ValueError)) throw err;
        problems.push(`${at(name, field)}: ${option.key}.${name}.${field}: ${err.message}`);
      }
    }
    for (const field of Object.keys(raw)) {
      if (!Object.hasOwn(option.entry!, field)) problems.push(`${at(name, field)}: ${option.key}.${name}.${field}: ${unknownKey(field, Object.keys(option.entry!)).replace('option', 'field')}`);
    }
    out[name] = entry;
  }
  return out;
}

function setPath(target: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) node = (node[part] ??= {}) as Record<string, unknown>;
  node[parts.at(-1)!] = value;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/** The cross-option rules (each names the options involved). */
function checkTogether(config: DropftpConfig, where: (key: string) => string, problems: string[]): void {
  if ((config.tls.certFile === null) !== (config.tls.keyFile === null)) {
    const set = config.tls.certFile === null ? 'tls.keyFile' : 'tls.certFile';
    problems.push(`${where(set)}: ${set}: tls.certFile and tls.keyFile go together`);
  }
  if (config.tls.required && config.tls.certFile === null) problems.push(`${where('tls.required')}: tls.required: needs tls.certFile and tls.keyFile`);
  if (config.tls.requireSessionReuse && config.tls.certFile === null) problems.push(`${where('tls.requireSessionReuse')}: tls.requireSessionReuse: needs tls.certFile and tls.keyFile`);
  // Without a certificate the implicit-FTPS listener was silently not opened.
  if (config.tls.implicitPort !== null && config.tls.certFile === null) problems.push(`${where('tls.implicitPort')}: tls.implicitPort: needs tls.certFile and tls.keyFile`);
  // The same check serve makes when it opens the listener: `config check` must refuse what serve refuses.
  try {
    new TrustedProxies(config.proxyProtocol.trustedProxies);
  } catch (err) {
    problems.push(`${where('proxyProtocol.trustedProxies')}: proxyProtocol.trustedProxies: ${(err as Error).message}`);
  }
  if (config.limits.loginDelayMaxMs < config.limits.loginDelayBaseMs) {
    problems.push(`${where('limits.loginDelayMaxMs')}: limits.loginDelayMaxMs: must be >= limits.loginDelayBaseMs (${config.limits.loginDelayBaseMs})`);
  }
}

/** Reads and validates every source; throws ConfigError listing every problem. */
export function loadConfig(input: ConfigInput = {}): LoadedConfig {
  const problems: string[] = [];
  const cwd = input.cwd ?? process.cwd();
  const env = input.env ?? process.env;
  const { flags, configFile } = readFlags(input.argv ?? [], problems);
  const envValues = readEnv(env, problems);
  const chosenFile = configFile ?? env[CONFIG_ENV] ?? input.file ?? null;
  const file = chosenFile ? resolve(cwd, chosenFile) : null;
  const fileValues = new Map<string, Given>();
  if (file) {
    let text: string | null = null;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      problems.push(`${basename(file)}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (text !== null) {
      const read = readConfigText(text, file);
      problems.push(...read.problems);
      for (const [key, fileValue] of read.values) fileValues.set(key, { value: fileValue.value, source: 'file', where: `${basename(file)}:${fileValue.line}`, fileValue });
    }
  }
  const result: Record<string, unknown> = {};
  const sources = new Map<string, ConfigSource>();
  const whereOf = new Map<string, string>();
  for (const option of OPTIONS) {
    const given = flags.get(option.key) ?? envValues.get(option.key) ?? fileValues.get(option.key);
    let value: unknown;
    try {
      if (!given) value = parseValue(option, option.default);
      else if (option.kind === 'map') value = parseMap(option, given, problems);
      else value = parseValue(option, given.value);
    } catch (err) {
      if (!(err instanceof ValueError)) throw err;
      problems.push(`${given!.where}: ${option.key}: ${err.message}`);
      continue;
    }
    if (PATH_KEYS.has(option.key) && typeof value === 'string') value = resolve(given?.source === 'file' ? dirname(file!) : cwd, value);
    setPath(result, option.key, value);
    sources.set(option.key, given?.source ?? 'default');
    whereOf.set(option.key, given?.where ?? 'default');
  }
  const config = result as unknown as DropftpConfig;
  if (problems.length === 0) checkTogether(config, (key) => whereOf.get(key) ?? key, problems);
  if (problems.length) throw new ConfigError(problems);
  return { config: deepFreeze(config), sources, file };
}

/** The three names of one option (README table, `config example`). */
export function namesOf(option: OptionSpec): { env: string | null; flags: string[] } {
  if (option.kind === 'map') return { env: null, flags: [] };
  return { env: envName(option.key), flags: [flagName(option.key), ...(option.aliases ?? [])] };
}
