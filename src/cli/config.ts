// `dropftp config check FILE | example | table | show [serve flags]`: validates a configuration
// file without starting anything, prints the example file or the README table generated from the
// schema, or shows the resolved configuration and where each value came from. Main thread.
// Invariant: check exits 0 when valid, 2 with one line per problem (file:line: option: why).

import { ConfigError, loadConfig } from '../config/load.ts';
import { exampleYaml, markdownTable } from '../config/usage.ts';
import { UsageError } from './args.ts';
import { parseServeArgs } from './serve-flags.ts';

const USAGE = `usage: dropftp config <check FILE | example | table | show [--config FILE] [serve options]>

  check FILE   validate FILE (exit 0 when valid, 2 with the problems)
  example      print an example file: every option with its default
  table        print every option as a Markdown table (default, env, flag)
  show         print the configuration serve would use (file, DROPFTP_* env, flags) and each source
`;

export async function configCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  // `dropftp config check --help`, `config example -h` …: the usage, exit 0.
  if (sub !== undefined && (rest.includes('--help') || rest.includes('-h'))) {
    process.stdout.write(USAGE);
    return 0;
  }
  if ((sub === 'example' || sub === 'table') && rest.length) {
    process.stderr.write(`dropftp config ${sub}: unexpected "${rest[0]}"\n${USAGE}`);
    return 2;
  }
  switch (sub) {
    case 'check': {
      if (rest.length !== 1 || rest[0]!.startsWith('-')) {
        process.stderr.write(USAGE);
        return 2;
      }
      try {
        // The file alone: the environment of the shell that checks is not the service's.
        loadConfig({ argv: ['--config', rest[0]!], env: {} });
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        process.stderr.write(err.problems.map((p) => `${p}\n`).join(''));
        return 2;
      }
      process.stdout.write(`${rest[0]}: ok\n`);
      return 0;
    }
    case 'example':
      process.stdout.write(exampleYaml());
      return 0;
    case 'table':
      process.stdout.write(markdownTable());
      return 0;
    case 'show': {
      try {
        const args = parseServeArgs(rest);
        if (args.help) {
          process.stdout.write(USAGE);
          return 0;
        }
        const { config, sources, file } = loadConfig({ argv: args.argv });
        const origin = Object.fromEntries([...sources].filter(([, s]) => s !== 'default'));
        process.stdout.write(JSON.stringify({ file, config, setBy: origin }, null, 2) + '\n');
        return 0;
      } catch (err) {
        if (err instanceof UsageError) {
          process.stderr.write(`dropftp config show: ${err.message}\n`);
          return 2;
        }
        if (!(err instanceof ConfigError)) throw err;
        process.stderr.write(err.problems.map((p) => `${p}\n`).join(''));
        return 2;
      }
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return sub === undefined ? 2 : 0;
    default:
      process.stderr.write(`dropftp config: unknown sub-command "${sub}"\n${USAGE}`);
      return 2;
  }
}
