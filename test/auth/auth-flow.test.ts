// `dropftp auth` end to end against the local box's OAuth endpoints: the command runs as a child
// process, the test plays the user (reads the printed authorize URL, has the box issue a code for
// its PKCE challenge, pastes the code on stdin); then the stored refresh token must mint working
// access tokens. Also: a wrong verifier/code saves nothing; a group-readable file is refused.

import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parse } from 'yaml';
import { readCredentialsFile } from '../../src/auth/credentials-file.ts';
import { TokenManager } from '../../src/auth/token-manager.ts';
import { DropboxRpc, closeSharedAgent } from '../../src/dropbox/rpc.ts';
import { adminOf, startLocalBox, type LocalBox, type LocalBoxAccount } from '../../src/localbox/index.ts';

const BIN = fileURLToPath(new URL('../../bin/dropftp.mjs', import.meta.url));

let dir = '';
let box: LocalBox;
let alice: LocalBoxAccount;

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dropftp-auth-'));
  box = await startLocalBox({ dataDir: join(dir, 'box') });
  alice = await box.createAccount('alice');
});

test.after(async () => {
  await closeSharedAgent();
  await box.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  url: URL | null;
}

/** Runs `dropftp auth ARGS`; `answer` turns the printed authorize URL into the line typed on stdin. */
function runAuth(args: string[], answer: (url: URL) => Promise<string>): Promise<Run> {
  const child = spawn(process.execPath, [BIN, 'auth', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let url: URL | null = null;
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  child.stdout.on('data', (d: Buffer) => {
    stdout += d;
    const m = /(http:\/\/\S+\/oauth2\/authorize\?\S+)/.exec(stdout);
    if (m && !url) {
      url = new URL(m[1]!);
      answer(url).then((line) => child.stdin.end(line + '\n'), () => child.stdin.end());
    }
  });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr, url })));
}

/** What the user gets from Dropbox after "Allow": a code bound to the URL's PKCE challenge. */
async function approve(url: URL, account = 'alice'): Promise<string> {
  const { code } = await adminOf(box).adminCall<{ code: string }>('POST', 'oauth/code', {
    account,
    code_challenge: url.searchParams.get('code_challenge'),
    code_challenge_method: url.searchParams.get('code_challenge_method'),
  });
  return code;
}

test('dropftp auth: PKCE code flow, credentials file 0600, refresh token works', async () => {
  const credentials = join(dir, 'conf', 'credentials.yaml');
  const run = await runAuth(['--account', 'work', '--app-key', alice.appKey, '--api-url', box.url, '--credentials', credentials], (url) => approve(url));
  assert.is(run.code, 0, run.stderr);
  const url = run.url!;
  assert.is(url.searchParams.get('client_id'), alice.appKey);
  assert.is(url.searchParams.get('response_type'), 'code');
  assert.is(url.searchParams.get('token_access_type'), 'offline');
  assert.is(url.searchParams.get('code_challenge_method'), 'S256');
  assert.ok(!url.searchParams.has('redirect_uri'), 'no-redirect flow');
  assert.match(run.stdout, alice.accountId);
  assert.match(run.stdout, credentials);

  assert.is(statSync(credentials).mode & 0o777, 0o600);
  const raw = parse(readFileSync(credentials, 'utf8')) as { accounts: Record<string, Record<string, string>> };
  assert.equal(Object.keys(raw.accounts), ['work']);
  assert.is(raw.accounts.work!.accountId, alice.accountId);
  assert.ok(!JSON.stringify(raw).includes('sl.'), 'no access token is stored');
  assert.ok(!run.stdout.includes(raw.accounts.work!.refreshToken!), 'the refresh token is not printed');

  // The stored refresh token mints access tokens that get_current_account accepts, refresh after refresh.
  const file = await readCredentialsFile(credentials);
  const tokens = new TokenManager();
  tokens.add({ name: 'work', ...file.accounts.work! });
  const rpc = new DropboxRpc({ name: 'work', apiUrl: file.accounts.work!.apiUrl, tokens: tokens.provider('work') });
  const first = await tokens.accessToken('work');
  assert.is((await rpc.currentAccount()).accountId, alice.accountId);
  const second = await tokens.refreshAfterExpired('work', first);
  assert.is.not(second, first);
  assert.is((await rpc.currentAccount()).accountId, alice.accountId);
  tokens.close();

  // A second account goes next to the first one.
  const bob = await box.createAccount('bob');
  const again = await runAuth(['--account', 'home', '--app-key', bob.appKey, '--api-url', box.url, '--credentials', credentials], (u) => approve(u, 'bob'));
  assert.is(again.code, 0, again.stderr);
  const both = await readCredentialsFile(credentials);
  assert.equal(Object.keys(both.accounts).sort(), ['home', 'work']);
  assert.is(both.accounts.home!.accountId, bob.accountId);
  assert.is(statSync(credentials).mode & 0o777, 0o600);
});

test('dropftp auth: a code for another PKCE challenge or a bad code saves nothing', async () => {
  const credentials = join(dir, 'bad', 'credentials.yaml');
  const args = ['--app-key', alice.appKey, '--api-url', box.url, '--credentials', credentials];
  const wrong = await runAuth(args, async () => {
    // Approved for a challenge this process never made: the verifier it sends cannot match.
    const { code } = await adminOf(box).adminCall<{ code: string }>('POST', 'oauth/code', { account: 'alice', code_challenge: 'A'.repeat(43), code_challenge_method: 'S256' });
    return code;
  });
  assert.is(wrong.code, 1);
  assert.match(wrong.stderr, /invalid_grant/);
  assert.match(wrong.stderr, /nothing saved/);
  const garbage = await runAuth(args, async () => 'not-a-code');
  assert.is(garbage.code, 1);
  assert.ok(!existsSync(credentials));
  const usage = await runAuth(['--api-url', box.url, '--credentials', credentials], async () => '');
  assert.is(usage.code, 2);
  assert.match(usage.stderr, /--app-key/);
});

test('credentials file readable by others is refused', async () => {
  const credentials = join(dir, 'conf', 'credentials.yaml');
  chmodSync(credentials, 0o644);
  try {
    await readCredentialsFile(credentials);
    assert.unreachable('should refuse');
  } catch (err) {
    assert.match((err as Error).message, /chmod 600/);
  } finally {
    chmodSync(credentials, 0o600);
  }
});

test.run();
