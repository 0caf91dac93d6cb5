// Configuration: precedence (flags > env > file > defaults), validation messages naming the option
// and its source line, the schema's cover (types, mapping, generated docs), `dropftp config check`,
// and `dropftp serve` refusing a bad file. In-process loadConfig where possible (fast); the CLI
// through bin/dropftp.mjs as a child process.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../src/config/load.ts';
import { OPTIONS, envName, flagName } from '../../src/config/schema.ts';
import { CLI_KEYS, MAPPED_KEYS, UNMAPPED_KEYS } from '../../src/config/to-options.ts';
import { exampleYaml } from '../../src/config/usage.ts';
import { RawFtp } from '../ftp/helpers/raw-client.ts';
import { runDropftp, startServe, waitFor } from '../ops/lifecycle-helpers.ts';

let dir: string;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dropftp-config-'));
});
test.after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

function problems(run: () => unknown): string[] {
  try {
    run();
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  assert.unreachable('expected a ConfigError');
  return [];
}

test('precedence: flags over env over file over defaults, per option', async () => {
  const path = await file('p.yaml', ['listen: 127.0.0.1:2001', 'passivePorts: 40000-40009', 'log:', '  level: debug', '  format: json', 'limits:', '  banMs: 5m', ''].join('\n'));
  const { config, sources } = loadConfig({
    argv: ['--config', path, '--listen', '127.0.0.1:2003'],
    env: { DROPFTP_LISTEN: '127.0.0.1:2002', DROPFTP_LOG_LEVEL: 'warn', DROPFTP_ENGINE_WORKERS: '3' },
  });
  assert.equal(config.listen, { host: '127.0.0.1', port: 2003 }); // flag > env > file
  assert.is(config.log.level, 'warn'); // env > file
  assert.equal(config.passivePorts, { min: 40000, max: 40009 }); // file > default
  assert.is(config.limits.banMs, 300_000); // "5m"
  assert.is(config.engine.workers, 3);
  assert.is(config.session.idleTimeoutMs, 300_000); // default
  assert.is(sources.get('listen'), 'flag');
  assert.is(sources.get('log.level'), 'env');
  assert.is(sources.get('log.format'), 'file');
  assert.is(sources.get('session.idleTimeoutMs'), 'default');
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.limits));
  // --no-workers takes no value; DROPFTP_CONFIG names the file when --config does not.
  const viaEnv = loadConfig({ argv: ['--no-workers'], env: { DROPFTP_CONFIG: path } });
  assert.is(viaEnv.config.engine.noWorkers, true);
  assert.is(viaEnv.config.listen.port, 2001);
  // Relative paths in the file are relative to the file.
  const rel = await file('rel.yaml', 'dataDir: store\n');
  assert.is(loadConfig({ argv: ['--config', rel], env: {} }).config.dataDir, join(dir, 'store'));
});

test('bad values name the option and the file line', async () => {
  const path = await file('dropftp.yaml', ['# comment', 'listen: 127.0.0.1:2121', 'limits:', '  maxConnectionsPerAddress: x', '  perIp: 3', 'passivePorts: 5000-4000', 'log:', '  level: loud', 'engine:', '  memoryBudgetBytes: lots', ''].join('\n'));
  const found = problems(() => loadConfig({ argv: ['--config', path], env: {} }));
  assert.ok(found.includes('dropftp.yaml:4: limits.maxConnectionsPerAddress: expected a positive integer, got "x"'), found.join('\n'));
  assert.ok(found.some((p) => p.startsWith('dropftp.yaml:5: limits.perIp: unknown option')), found.join('\n'));
  assert.ok(found.includes('dropftp.yaml:6: passivePorts: expected a port range A-B with 1 <= A <= B <= 65535, got "5000-4000"'), found.join('\n'));
  assert.ok(found.some((p) => p.startsWith('dropftp.yaml:8: log.level: expected one of trace, debug')), found.join('\n'));
  assert.ok(found.some((p) => p.startsWith('dropftp.yaml:10: engine.memoryBudgetBytes: expected a size in bytes')), found.join('\n'));
  assert.is(found.length, 5);
});

test('unknown keys suggest the nearest option; sections must be maps', async () => {
  const path = await file('typo.yaml', ['limits:', '  maxConnectionPerUser: 3', 'engine: 4', 'sesion:', '  idleTimeoutMs: 1', ''].join('\n'));
  const found = problems(() => loadConfig({ argv: ['--config', path], env: {} }));
  assert.ok(found.includes('typo.yaml:2: limits.maxConnectionPerUser: unknown option (did you mean limits.maxConnectionsPerUser?)'), found.join('\n'));
  assert.ok(found.includes('typo.yaml:3: engine: expected a map of options, got 4'), found.join('\n'));
  assert.ok(found.some((p) => p.startsWith('typo.yaml:4: sesion: unknown option')), found.join('\n'));
});

test('bad YAML and duplicate keys are reported with their line', async () => {
  const broken = await file('broken.yaml', ['listen: 127.0.0.1:2121', 'log:', '  level: "info', 'greeting: hi', ''].join('\n'));
  const found = problems(() => loadConfig({ argv: ['--config', broken], env: {} }));
  assert.is(found.length, 1);
  assert.match(found[0]!, /^broken\.yaml:\d+: /);
  const dup = await file('dup.yaml', ['listen: 127.0.0.1:1', 'greeting: a', 'listen: 127.0.0.1:2', ''].join('\n'));
  assert.equal(problems(() => loadConfig({ argv: ['--config', dup], env: {} })), ['dup.yaml:3: Map keys must be unique']);
  assert.equal(problems(() => loadConfig({ argv: ['--config', join(dir, 'missing.yaml')], env: {} })), ['missing.yaml: cannot read ' + join(dir, 'missing.yaml') + ': ENOENT']);
});

test('env and flag problems name the variable or the flag', () => {
  const found = problems(() =>
    loadConfig({ argv: ['--pasv-ports', '10-5', '--listn', 'x', '--shutdown-grace-ms', 'soon'], env: { DROPFTP_LIMITS_BAN_MS: '-1', DROPFTP_LOG_LEVL: 'info', DROPFTP_APP_KEY: 'for dropftp auth' } }),
  );
  assert.ok(found.includes('--pasv-ports: passivePorts: expected a port range A-B with 1 <= A <= B <= 65535, got "10-5"'), found.join('\n'));
  assert.ok(found.includes('--listn: unknown flag (did you mean --listen?)'), found.join('\n'));
  assert.ok(found.some((p) => p.startsWith('--shutdown-grace-ms: shutdownGraceMs: expected a duration')), found.join('\n'));
  assert.ok(found.some((p) => p.startsWith('DROPFTP_LIMITS_BAN_MS: limits.banMs: expected a duration')), found.join('\n'));
  assert.ok(found.includes('DROPFTP_LOG_LEVL: unknown environment variable (did you mean DROPFTP_LOG_LEVEL?)'), found.join('\n'));
  assert.is(found.length, 5);
});

test('cross-option rules and per-user map entries', async () => {
  const path = await file('tls.yaml', ['tls:', '  certFile: cert.pem', '  required: true', 'limits:', '  loginDelayBaseMs: 9s', '  userBandwidth:', '    bob:', '      uploadBytesPerSec: 1MiB', '    eve:', '      upload: 5', ''].join('\n'));
  const found = problems(() => loadConfig({ argv: ['--config', path], env: {} }));
  assert.ok(found.includes('tls.yaml:10: limits.userBandwidth.eve.upload: unknown field'), found.join('\n'));
  const ok = await file('tls2.yaml', ['tls:', '  certFile: cert.pem', 'limits:', '  loginDelayBaseMs: 9s', ''].join('\n'));
  const cross = problems(() => loadConfig({ argv: ['--config', ok], env: {} }));
  assert.ok(cross.includes('tls2.yaml:2: tls.certFile: tls.certFile and tls.keyFile go together'), cross.join('\n'));
  assert.ok(cross.includes('default: limits.loginDelayMaxMs: must be >= limits.loginDelayBaseMs (9000)'), cross.join('\n'));
  // Both passed `config check` and then did not do what they said: no implicit listener without a
  // certificate (silently), and a trusted proxy serve refused only when it opened its listener.
  const late = await file('late.yaml', ['tls:', '  implicitPort: 2432', 'proxyProtocol:', '  enabled: true', '  trustedProxies: ["999.1.1.1/33"]', ''].join('\n'));
  const caught = problems(() => loadConfig({ argv: ['--config', late], env: {} }));
  assert.ok(caught.includes('late.yaml:2: tls.implicitPort: needs tls.certFile and tls.keyFile'), caught.join('\n'));
  assert.ok(caught.includes('late.yaml:5: proxyProtocol.trustedProxies: not an IP address or CIDR block: 999.1.1.1/33'), caught.join('\n'));
});

test('dropftp serve with a data directory that is a file: one line naming it, exit 2', async () => {
  const plain = await file('plain-file', 'x');
  for (const dataDir of [plain, join(plain, 'sub')]) {
    const run = await runDropftp(['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0'], {});
    assert.is(run.code, 2, run.stdout + run.stderr);
    assert.match(run.stderr, `dropftp serve: dataDir ${dataDir}: not a usable directory`);
    assert.not.match(run.stderr, 'at mkdirSync', 'no stack trace');
  }
});

test('schema cover: every key resolves, is mapped or listed, has distinct env and flag names', () => {
  const { config } = loadConfig({ argv: [], env: {} });
  const envs = new Set<string>();
  const flags = new Set<string>();
  for (const option of OPTIONS) {
    let node: unknown = config;
    for (const part of option.key.split('.')) node = (node as Record<string, unknown>)[part];
    assert.ok(node !== undefined, `${option.key} missing from the resolved config`);
    const homes = [MAPPED_KEYS.includes(option.key), Object.hasOwn(CLI_KEYS, option.key), Object.hasOwn(UNMAPPED_KEYS, option.key)].filter(Boolean).length;
    assert.is(homes, 1, `${option.key}: mapped, CLI or unmapped, exactly one`);
    assert.not.ok(envs.has(envName(option.key)), envName(option.key));
    assert.not.ok(flags.has(flagName(option.key)), flagName(option.key));
    envs.add(envName(option.key));
    flags.add(flagName(option.key));
  }
});

test('deploy/dropftp.example.yaml is the generated example and is valid', async () => {
  const path = new URL('../../deploy/dropftp.example.yaml', import.meta.url);
  assert.fixture(await readFile(path, 'utf8'), exampleYaml());
  const { config, sources } = loadConfig({ argv: ['--config', path.pathname], env: {} });
  assert.is(config.listen.port, 2121);
  assert.ok([...sources.values()].includes('file'));
});

test('dropftp config check: exit 0 when valid, 2 with file:line messages', async () => {
  const good = await file('good.yaml', 'listen: 127.0.0.1:2121\nshutdownGraceMs: 10s\n');
  const bad = await file('bad.yaml', 'listen: 127.0.0.1:2121\nlimits:\n  maxConnectionsPerAddress: x\n');
  const [ok, ko] = await Promise.all([runDropftp(['config', 'check', good]), runDropftp(['config', 'check', bad])]);
  assert.is(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, 'good.yaml: ok');
  assert.is(ko.code, 2);
  assert.is(ko.stderr.trim(), 'bad.yaml:3: limits.maxConnectionsPerAddress: expected a positive integer, got "x"');
});

test('dropftp config show and serve --help: resolved values with their sources, every flag listed', async () => {
  const [show, help] = await Promise.all([
    runDropftp(['config', 'show', '--listen', '127.0.0.1:9', '--no-workers'], { DROPFTP_LOG_LEVEL: 'warn' }),
    runDropftp(['serve', '--help']),
  ]);
  assert.is(show.code, 0, show.stderr);
  const shown = JSON.parse(show.stdout) as { config: { listen: unknown; log: { level: string }; engine: { noWorkers: boolean } }; setBy: Record<string, string> };
  assert.equal(shown.config.listen, { host: '127.0.0.1', port: 9 });
  assert.is(shown.config.log.level, 'warn');
  assert.is(shown.config.engine.noWorkers, true);
  assert.equal(shown.setBy, { listen: 'flag', 'engine.noWorkers': 'flag', 'log.level': 'env' });
  assert.is(help.code, 0);
  for (const option of OPTIONS) if (option.kind !== 'map') assert.ok(help.stdout.includes(flagName(option.key)) && help.stdout.includes(envName(option.key)), option.key);
  assert.ok(help.stdout.includes('--no-workers'));
});

test('dropftp serve refuses a bad configuration before starting (exit 2, option and line named)', async () => {
  const bad = await file('serve-bad.yaml', `dataDir: ${join(dir, 'never')}\nengine:\n  workers: 0\n  turbo: true\n`);
  const run = await runDropftp(['serve', '--config', bad, '--listen', '127.0.0.1:0'], { DROPFTP_PASSIVE_PORTS: 'a-b' });
  assert.is(run.code, 2, run.stdout + run.stderr);
  assert.match(run.stderr, 'serve-bad.yaml:3: engine.workers: expected a positive integer in 1..256, got 0');
  assert.match(run.stderr, 'serve-bad.yaml:4: engine.turbo: unknown option');
  assert.match(run.stderr, 'DROPFTP_PASSIVE_PORTS: passivePorts: expected a port range');
  assert.not.match(run.stdout, 'listening');
});

test('a running serve shows who won: flag listen, env passive range and log level over the file', async () => {
  const dataDir = join(dir, 'serve-data');
  // The file asks for a port that is then taken by the flag, a passive range the env replaces, and
  // debug logs that the env lowers to warn.
  const path = await file('serve.yaml', [`dataDir: ${dataDir}`, 'listen: 127.0.0.1:1', 'passivePorts: 41000-41009', 'log:', '  level: debug', 'engine:', '  workers: 1', ''].join('\n'));
  const serve = await startServe(['--config', path, '--listen', '127.0.0.1:0'], { DROPFTP_PASSIVE_PORTS: '42000-42019', DROPFTP_LOG_LEVEL: 'warn', DROPFTP_LISTEN: '127.0.0.1:2' });
  try {
    assert.ok(serve.port > 2, `flag port: ${serve.port}`);
    const c = await RawFtp.connect(serve.port);
    await c.login(serve.user, serve.password);
    const { port } = await c.pasv();
    assert.ok(port >= 42000 && port <= 42019, `PASV port ${port} from the env range`);
    const bad = await RawFtp.connect(serve.port);
    await bad.cmd('USER nobody');
    await bad.cmd('PASS wrong-password-123');
    bad.close();
    c.close();
    const failed = await waitFor(() => serve.records().find((r) => r.event === 'login' && r.result !== 'ok'), 10_000, 'login failed line');
    assert.is(failed.level, 40);
    // warn from the env: no info lines (connect, login ok) were written after the start line.
    assert.not.ok(serve.records().some((r) => r.event === 'connect' || (r.event === 'login' && r.result === 'ok')), serve.stdout());
  } finally {
    serve.child.kill('SIGTERM');
    assert.equal(await serve.exited, { code: 0, signal: null });
  }
});

test.run();
