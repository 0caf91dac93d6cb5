// `dropftp auth`: links a Dropbox account with the OAuth 2 code flow, PKCE and no redirect: prints
// the authorize URL, reads the code the user pastes, exchanges it, checks the token with
// users/get_current_account, then stores the refresh token in the credentials file. Main thread.
// Invariants: nothing is written unless the exchange and the check succeeded; no token is printed;
// the file is created 0600 (credentials-file.ts).

import { createInterface } from 'node:readline';
import { join, resolve } from 'node:path';
import { Agent } from 'undici';
import { DROPBOX_API_URL, DROPBOX_CONTENT_URL, saveAccount, validAccountName } from '../auth/credentials-file.ts';
import { authorizeUrl, createPkce, exchangeCode } from '../auth/oauth.ts';
import { DropboxRpc } from '../dropbox/rpc.ts';
import { DropftpError } from '../errors.ts';
import { UsageError, flagLines, parseCommand, runCommand, type FlagTable } from './args.ts';

const AUTH_FLAGS = {
  account: { type: 'string', valueName: 'NAME', doc: 'name users refer to (users file "account: NAME"; default "dropbox")' },
  'app-key': { type: 'string', valueName: 'KEY', doc: "your Dropbox app's key (or env DROPFTP_APP_KEY); no app secret is needed (PKCE)" },
  'api-url': { type: 'string', valueName: 'URL', doc: `API base URL (default ${DROPBOX_API_URL}; the local box: its URL)` },
  'content-url': { type: 'string', valueName: 'URL', doc: `content base URL (default ${DROPBOX_CONTENT_URL}, or --api-url when that is set)` },
  'data-dir': { type: 'string', valueName: 'DIR', doc: 'data directory (default ./data); the credentials file is DIR/credentials.yaml' },
  credentials: { type: 'string', valueName: 'FILE', doc: 'credentials file (overrides --data-dir)' },
} as const satisfies FlagTable;

const USAGE = `usage: dropftp auth [--account NAME] [--app-key KEY] [--api-url URL] [--content-url URL]
                   [--data-dir DIR] [--credentials FILE]

Links a Dropbox account: opens nothing itself, prints a URL to open in a browser, then reads the
code Dropbox shows after "Allow" from stdin. The refresh token goes into the credentials file.

${flagLines(AUTH_FLAGS)}`;

interface AuthFlags {
  account: string;
  appKey: string;
  apiUrl: string;
  contentUrl: string;
  credentialsFile: string;
}

function url(name: string, value: string | undefined): string | null {
  if (value === undefined) return null;
  if (!/^https?:\/\/[^/]+/.test(value)) throw new UsageError(`--${name}: expected an http(s) URL, got "${value}"`);
  return value.replace(/\/+$/, '');
}

function flagsOf(values: { [K in keyof typeof AUTH_FLAGS]?: string }): AuthFlags {
  for (const [name, value] of Object.entries(values)) if (value === '') throw new UsageError(`--${name} needs a value`);
  const account = values.account ?? 'dropbox';
  if (!validAccountName(account)) throw new UsageError(`--account: "${account}" is not 1-64 of [A-Za-z0-9._@-]`);
  const appKey = values['app-key'] ?? process.env.DROPFTP_APP_KEY ?? '';
  if (!appKey) throw new UsageError('--app-key (or DROPFTP_APP_KEY) is required: the key of your Dropbox app');
  const apiUrl = url('api-url', values['api-url']);
  const contentUrl = url('content-url', values['content-url']);
  return {
    account,
    appKey,
    apiUrl: apiUrl ?? DROPBOX_API_URL,
    contentUrl: contentUrl ?? apiUrl ?? DROPBOX_CONTENT_URL,
    credentialsFile: resolve(values.credentials ?? join(values['data-dir'] ?? './data', 'credentials.yaml')),
  };
}

/** The first non-empty line of stdin (the pasted code), or '' at end of input. */
function readCode(): Promise<string> {
  return new Promise((resolveLine) => {
    const rl = createInterface({ input: process.stdin, terminal: false });
    let done = false;
    const finish = (line: string): void => {
      if (done) return;
      done = true;
      rl.close();
      process.stdin.pause();
      resolveLine(line);
    };
    rl.on('line', (line) => {
      if (line.trim()) finish(line.trim());
    });
    rl.on('close', () => finish(''));
  });
}

export function authCommand(argv: string[]): Promise<number> {
  return runCommand('dropftp auth', USAGE, async () => {
    const { values, help } = parseCommand(argv, AUTH_FLAGS);
    if (help) {
      process.stdout.write(USAGE);
      return 0;
    }
    return link(flagsOf(values as { [K in keyof typeof AUTH_FLAGS]?: string }));
  });
}

async function link(flags: AuthFlags): Promise<number> {
  const pkce = createPkce();
  process.stdout.write(
    `1. Open this URL in a browser and sign in to the Dropbox account to link:\n\n   ${authorizeUrl(flags.apiUrl, flags.appKey, pkce)}\n\n` +
      `2. Click "Allow" (you may have to log in first).\n3. Paste the authorization code here and press Enter: `,
  );
  const code = await readCode();
  process.stdout.write('\n');
  if (!code) {
    process.stderr.write('dropftp auth: no code given; nothing saved\n');
    return 1;
  }
  const agent = new Agent({ connections: 2 });
  try {
    const client = { apiUrl: flags.apiUrl, appKey: flags.appKey };
    const grant = await exchangeCode(client, code, pkce.verifier);
    if (!grant.refreshToken) {
      throw new DropftpError('DROPFTP_ERR_UPSTREAM_AUTH', 'the token endpoint returned no refresh token (offline access was not granted)');
    }
    const who = await new DropboxRpc({ name: flags.account, apiUrl: flags.apiUrl, accessToken: grant.accessToken }, agent).currentAccount();
    await saveAccount(flags.credentialsFile, flags.account, {
      appKey: flags.appKey,
      refreshToken: grant.refreshToken,
      apiUrl: flags.apiUrl,
      contentUrl: flags.contentUrl,
      accountId: who.accountId,
      email: who.email,
    });
    process.stdout.write(
      `dropftp: linked Dropbox account "${flags.account}" (${who.displayName} <${who.email}>, ${who.accountId})\n` +
        `dropftp: refresh token saved to ${flags.credentialsFile} (mode 0600)\n` +
        `dropftp: give users "account: ${flags.account}" in the users file, then reload a running server (SIGHUP)\n`,
    );
    return 0;
  } catch (err) {
    process.stderr.write(`dropftp auth: ${(err as Error).message}; nothing saved\n`);
    return 1;
  } finally {
    await agent.close();
  }
}
