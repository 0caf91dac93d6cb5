// Log output: every record passes the redacting sink (passwords, tokens, secrets, Authorization
// headers, PASS lines, OAuth bodies — at any depth, in child bindings and in error messages); the
// terminal format is one readable line per record; levels filter.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createLogger } from '../../src/log/logger.ts';
import { CENSOR } from '../../src/log/redact.ts';
import { prettyLine } from '../../src/log/sink.ts';

function capture(format: 'json' | 'pretty', level = 'info'): { log: ReturnType<typeof createLogger>; lines: string[] } {
  const lines: string[] = [];
  const log = createLogger({ level, format, output: { write: (text) => lines.push(text) }, isTTY: false });
  return { log, lines };
}

const SECRETS = ['hunter2-pw', 'sl.ACCESS-tok', 'REFRESH-tok-9', 'app-secret-7', 'verifier-xyz'];

test('no secret survives, whatever carries it', () => {
  const { log, lines } = capture('json');
  log.info({ user: 'bob', password: SECRETS[0], nested: { deeper: { accessToken: SECRETS[1] } } }, 'login');
  log.child({ account: 'work', refresh_token: SECRETS[2] }).warn({ headers: { Authorization: `Bearer ${SECRETS[1]}` } }, 'refresh');
  log.error({ err: new Error(`token endpoint said: grant_type=refresh_token&refresh_token=${SECRETS[2]}&client_secret=${SECRETS[3]}`) }, 'failed');
  log.info(`client sent PASS ${SECRETS[0]}`);
  log.info({ body: `{"access_token": "${SECRETS[1]}", "code_verifier": 1}`, form: `code_verifier=${SECRETS[4]}&x=1` }, 'upstream body');
  log.info({ appSecret: SECRETS[3], list: [{ secret: SECRETS[3] }] }, 'config');
  const all = lines.join('');
  for (const secret of SECRETS) assert.not.ok(all.includes(secret), `${secret} leaked: ${all}`);
  assert.is(lines.length, 6);
  const first = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.is(first.user, 'bob');
  assert.is(first.password, CENSOR);
  assert.match(lines[3]!, 'PASS [Redacted]');
  // Ordinary fields pass untouched.
  log.info({ path: '/passport/scan.pdf', bytes: 42, passive: true }, 'transfer complete');
  const last = JSON.parse(lines.at(-1)!) as Record<string, unknown>;
  assert.equal([last.path, last.bytes, last.passive, last.msg], ['/passport/scan.pdf', 42, true, 'transfer complete']);
});

test('every secret-like key is redacted, whatever its case or separators (the unparsed fast path included)', () => {
  const { log, lines } = capture('json');
  const keys = ['pass', 'Password', 'passwd', 'pwd', 'secret', 'app_secret', 'clientSecret', 'token', 'access_token', 'refreshToken', 'id-token', 'authorization', 'Proxy-Authorization', 'cookie', 'Set-Cookie', 'credentials', 'code_verifier', 'apiKey', 'private_key', 'key'];
  for (const key of keys) log.info({ [key]: 'S3cr3t-v4lue' }, 'x');
  for (const key of keys) log.info({ nested: [{ [key]: 'S3cr3t-v4lue' }] }, 'x');
  assert.is(lines.length, keys.length * 2);
  for (const line of lines) assert.not.ok(line.includes('S3cr3t-v4lue'), line);
});

test('a record with nothing secret-like is written as pino serialized it', () => {
  const { log, lines } = capture('json');
  log.info({ event: 'transfer', user: 'bob', path: '/a/b.bin', bytes: 42, durationMs: 3, result: 'ok', ftpCode: 226 }, 'transfer complete');
  const record = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.equal([record.event, record.user, record.path, record.bytes, record.ftpCode], ['transfer', 'bob', '/a/b.bin', 42, 226]);
  assert.ok(lines[0]!.endsWith('"msg":"transfer complete"}\n'));
});

test('pretty: one readable line per record, secrets redacted too, level filter', () => {
  const { log, lines } = capture('pretty', 'warn');
  log.info({ event: 'connect' }, 'not shown');
  log.warn({ event: 'transfer', user: 'bob', path: '/a b.bin', bytes: 3, token: 'x-secret' }, 'transfer failed');
  assert.is(lines.length, 1);
  assert.match(lines[0]!, /^\d\d:\d\d:\d\d\.\d{3} WARN  transfer failed event=transfer user=bob path="\/a b\.bin" bytes=3 token=\[Redacted\]\n$/);
  assert.is(prettyLine({ level: 30, time: '2026-01-01T10:00:00.000Z', msg: 'hi' }, false), '10:00:00.000 INFO  hi\n');
});

test.run();
