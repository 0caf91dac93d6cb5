// Free loopback ports for tests that must name a port before something listens on it (a command
// line, a proxy's config, a passive range). Test code only; main thread. A port is free when probed;
// nothing reserves it, so use it at once.

import { createServer } from 'node:net';

/** Listens on `port` (0: the kernel picks one) at 127.0.0.1 and closes again; the port, or null if taken. */
async function probe(port: number): Promise<number | null> {
  const server = createServer();
  const bound = await new Promise<number | null>((resolve) => {
    server.once('error', () => resolve(null));
    server.listen(port, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });
  if (bound !== null) await new Promise((resolve) => server.close(resolve));
  return bound;
}

/** A port free right now, chosen by the kernel (from its ephemeral range). */
export async function freePort(): Promise<number> {
  return (await probe(0))!;
}

/**
 * A free port below Linux's default ephemeral range (32768-60999), for a listener that is closed and
 * bound again during the test (a passive range of one port): a port from the ephemeral range can be
 * taken meanwhile as the local port of an outgoing connection, and the next bind then fails.
 */
export async function freePortOutsideEphemeral(): Promise<number> {
  for (;;) {
    const port = await probe(20000 + Math.floor(Math.random() * 12000));
    if (port !== null) return port;
  }
}
