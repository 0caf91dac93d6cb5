// The process logger (pino): JSON lines by default, readable lines on a terminal, every record
// redacted on its way out (sink.ts). Main thread. Invariants: created once from the resolved
// configuration; children carry the component name; its records reach standard output by the end of
// the event loop's turn that made them (sink.ts), and at exit at the latest.

import { pino, type Logger } from 'pino';
import { createSink, STDOUT, type LogOutput } from './sink.ts';

export type { Logger } from 'pino';

export interface LoggerOptions {
  level: string;
  /** auto: pretty when the output is a terminal, else json. */
  format: 'auto' | 'json' | 'pretty';
  output?: LogOutput;
  /** Whether the output is a terminal (auto format, colours); default: stdout's. */
  isTTY?: boolean;
}

export function createLogger(options: LoggerOptions): Logger {
  const tty = options.isTTY ?? (options.output === undefined && process.stdout.isTTY === true);
  const format = options.format === 'auto' ? (tty ? 'pretty' : 'json') : options.format;
  return pino(
    {
      level: options.level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (_label, number) => ({ level: number }) },
    },
    createSink(format, options.output ?? STDOUT, tty && format === 'pretty'),
  );
}

/** A logger that writes nothing (library use and tests that do not look at logs). */
export function silentLog(): Logger {
  return pino({ level: 'silent' });
}
