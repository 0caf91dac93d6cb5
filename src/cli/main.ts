// Entry point of the `dropftp` command: parses the sub-command and hands off to it.
// Runs on the main thread. Returns the process exit code instead of calling process.exit, so that
// open handles (servers, pools) decide when the process ends.

const USAGE = `usage: dropftp <command> [options]

commands:
  serve       run the FTP server (on the embedded local box unless configured otherwise)
  user        add|list|remove|passwd FTP users (users file: scrypt hash, root, permissions, mounts)
  auth        link a Dropbox account (OAuth 2 with PKCE; refresh token into the credentials file)
  config      check a configuration file, print the example file or the option table
  localbox    run the local box (a Dropbox-API-compatible storage server) on its own
  help        show this text
`;

export async function main(argv: string[]): Promise<number> {
  const [command = 'help'] = argv;
  switch (command) {
    case 'serve':
      return (await import('./serve.ts')).serveCommand(argv.slice(1));
    case 'auth':
      return (await import('./auth.ts')).authCommand(argv.slice(1));
    case 'user':
      return (await import('./user.ts')).userCommand(argv.slice(1));
    case 'config':
      return (await import('./config.ts')).configCommand(argv.slice(1));
    case 'localbox': {
      const { localboxCommand } = await import('./localbox.ts');
      return localboxCommand(argv.slice(1));
    }
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return 0;
    default:
      process.stderr.write(`dropftp: unknown command "${command}"\n${USAGE}`);
      return 2;
  }
}
