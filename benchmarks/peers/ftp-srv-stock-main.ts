// Stock ftp-srv 4.6.3 on local disk: its default FileSystem rooted at a directory, one user, a
// passive port range. Spawned by the ftp-srv-stock peer; its own process and main thread.
// Usage: ftp-srv-stock-main.ts PORT ROOT USER PASSWORD PASV_FIRST PASV_LAST
// Invariant: nothing but the logger level differs from ftp-srv's defaults (bunyan at 'error', so that
// per-connection info logging to a pipe is not what gets measured).

import { createRequire } from 'node:module';
import { FtpSrv } from 'ftp-srv';

// bunyan ships no types; ftp-srv depends on it, so it is installed.
const bunyan = createRequire(import.meta.url)('bunyan') as { createLogger(o: { name: string; level: string }): unknown };

const [port, root, user, password, first, last] = process.argv.slice(2);
const server = new FtpSrv({
  url: `ftp://127.0.0.1:${port}`,
  pasv_url: '127.0.0.1',
  pasv_min: Number(first),
  pasv_max: Number(last),
  anonymous: false,
  greeting: 'ftp-srv ready',
  log: bunyan.createLogger({ name: 'ftp-srv-stock', level: 'error' }),
});
server.on('login', ({ username, password: given }, resolve, reject) => {
  if (username === user && given === password) resolve({ root });
  else reject(new Error('bad login'));
});
await server.listen();
process.on('SIGTERM', () => {
  void Promise.resolve(server.close()).finally(() => process.exit(0));
});
