// Entry point of the local box child process (spawned by startLocalBox with `--import tsx`): runs the
// server and reports its URL to the parent over IPC. Runs as the child's main thread.
// Invariants: exits when the parent disconnects or on SIGTERM (graceful); ignores SIGINT while its
// parent is connected (Ctrl-C reaches the whole process group, and the parent first drains the
// transfers that still need us, then closes us); reads its config from
// the LOCALBOX_CONFIG environment variable (a resolved ServerConfig as JSON).

import { watchParent } from './parent-watch.ts';
import { startServer } from './server.ts';
import type { ServerConfig } from './types.ts';

const config = JSON.parse(process.env.LOCALBOX_CONFIG ?? 'null') as ServerConfig | null;
if (!config) {
  process.stderr.write('localbox child: LOCALBOX_CONFIG is not set\n');
  process.exit(2);
}

try {
  const running = await startServer(config);
  let closing = false;
  const stop = async (): Promise<void> => {
    if (closing) return;
    closing = true;
    await running.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => {
    if (!process.connected) void stop();
  });
  // The gateway is gone (kill -9 included): nobody is left to serve, so give the data directory
  // back at once (a restarted gateway is waiting for it); SQLite's WAL makes this as safe as a crash.
  if (process.send) {
    watchParent(() => {
      closing = true;
      try {
        running.box.close();
      } finally {
        process.exit(0);
      }
    });
  }
  process.on('message', (m: { type?: string }) => {
    if (m?.type === 'close') void stop();
  });
  if (process.send) process.send({ type: 'listening', url: running.url });
  else process.stdout.write(`${JSON.stringify({ type: 'listening', url: running.url })}\n`);
} catch (err) {
  const message = (err as Error)?.message ?? String(err);
  const code = (err as { code?: unknown })?.code;
  process.stderr.write(`localbox child: ${message}\n`);
  // Exit once the message is out, so that the parent reads the reason before it sees the exit.
  if (process.send) process.send({ type: 'error', message, ...(typeof code === 'string' && code.startsWith('DROPFTP_ERR_') ? { code } : {}) }, () => process.exit(1));
  else process.exit(1);
}
