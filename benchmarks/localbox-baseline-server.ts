// Baseline for benchmarks/localbox-throughput.ts: the simplest possible Node HTTP server on the same
// machine (a child process), streaming bytes from memory and discarding upload bodies. It shows the
// ceiling that loopback HTTP in Node sets, measured in the same run as the local box.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const pattern = Buffer.alloc(1024 * 1024, 0x5a);
const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  if (url.pathname === '/download') {
    const total = Number(url.searchParams.get('bytes'));
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': total });
    let sent = 0;
    const pump = (): void => {
      while (sent < total) {
        const n = Math.min(pattern.length, total - sent);
        sent += n;
        if (!res.write(n === pattern.length ? pattern : pattern.subarray(0, n))) return void res.once('drain', pump);
      }
      res.end();
    };
    req.resume();
    pump();
  } else {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{}');
    });
  }
});
server.requestTimeout = 0;
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
