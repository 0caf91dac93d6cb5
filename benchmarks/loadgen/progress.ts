// The one-line progress display of a load run on stderr: rewritten in place on a terminal, one
// line every 5 s otherwise (logs stay readable). Main thread. Invariant: done() ends the line.

import type { Counters } from './protocol.ts';

export class ProgressLine {
  private lastBytes = 0;
  private lastMs = Date.now();
  private lastPrintMs = 0;
  private readonly startMs = Date.now();
  private readonly tty = process.stderr.isTTY === true;

  constructor(private readonly label: string) {}

  update(c: Counters, phase: string, extra = ''): void {
    const now = Date.now();
    const rate = ((c.bytes - this.lastBytes) / 1e6 / Math.max(0.001, (now - this.lastMs) / 1000)).toFixed(1);
    this.lastBytes = c.bytes;
    this.lastMs = now;
    const line =
      `[${this.label}] ${phase} ${((now - this.startMs) / 1000).toFixed(0)}s  login ${c.loggedIn}` +
      (c.loginFailed ? ` (${c.loginFailed} failed)` : '') +
      `  active ${c.active}  done ${c.done}  failed ${c.failed}  ${(c.bytes / 2 ** 20).toFixed(0)} MiB  ${rate} MB/s${extra ? `  ${extra}` : ''}`;
    if (this.tty) process.stderr.write(`\r\x1b[K${line}`);
    else if (now - this.lastPrintMs >= 5000) {
      this.lastPrintMs = now;
      process.stderr.write(`${line}\n`);
    }
  }

  done(message: string): void {
    process.stderr.write(`${this.tty ? '\r\x1b[K' : ''}[${this.label}] ${message}\n`);
  }
}
