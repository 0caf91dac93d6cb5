// Splits the control connection's byte stream into command lines. Main thread, one per connection.
// Invariants: a line is decoded only once complete, so a command or a multi-byte UTF-8 character
// split across TCP segments survives; Telnet IAC sequences (RFC 854, sent with ABOR per RFC 959
// 4.1.3) are removed; no line grows past maxLineBytes (the rest of an overlong line is discarded);
// a line that is not valid UTF-8 (a legacy Latin-1 client) is read as Latin-1, never with U+FFFD
// replacements (r\xe9sum\xe9 and r\xe8sum\xe8 stay two names).

import { isUtf8 } from 'node:buffer';

export type LineEvent = { line: string } | { tooLong: true };

const LF = 0x0a;
const CR = 0x0d;
const IAC = 0xff;
/** Telnet Data Mark (RFC 854). */
const DM = 0xf2;

const STATE = { normal: 0, iac: 1, option: 2 } as const;
type State = (typeof STATE)[keyof typeof STATE];

export class LineReader {
  readonly maxLineBytes: number;
  #parts: Buffer[] = [];
  #length = 0;
  #discarding = false;
  #state: State = STATE.normal;

  constructor(maxLineBytes = 4096) {
    this.maxLineBytes = maxLineBytes;
  }

  /** Feeds one chunk; returns the complete lines it finished (possibly none). */
  push(chunk: Buffer): LineEvent[] {
    const out: LineEvent[] = [];
    const clean = this.#state === STATE.normal && !chunk.includes(IAC) ? chunk : this.#stripTelnet(chunk);
    let start = 0;
    while (start <= clean.length) {
      const lf = clean.indexOf(LF, start);
      if (lf === -1) {
        this.#append(clean.subarray(start), out);
        break;
      }
      this.#append(clean.subarray(start, lf), out);
      this.#finishLine(out);
      start = lf + 1;
    }
    // Python's ftplib sends ABOR with MSG_OOB: the kernel takes the last byte ("\n") out of band, so
    // "ABOR\r" arrives with no line feed and the client then waits for our reply. Accept it.
    if (this.#length === 5 && !this.#discarding) {
      const pending = Buffer.concat(this.#parts);
      if (pending[4] === CR && pending.subarray(0, 4).toString('latin1').toUpperCase() === 'ABOR') {
        this.#finishLine(out);
      }
    }
    return out;
  }

  #append(bytes: Buffer, out: LineEvent[]): void {
    if (bytes.length === 0 || this.#discarding) return;
    if (this.#length + bytes.length > this.maxLineBytes) {
      this.#parts = [];
      this.#length = 0;
      this.#discarding = true;
      out.push({ tooLong: true });
      return;
    }
    this.#parts.push(bytes);
    this.#length += bytes.length;
  }

  #finishLine(out: LineEvent[]): void {
    if (this.#discarding) {
      this.#discarding = false;
      return;
    }
    let line = this.#parts.length === 1 ? this.#parts[0]! : Buffer.concat(this.#parts, this.#length);
    this.#parts = [];
    this.#length = 0;
    if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
    // A Telnet DM left alone at the start: BSD ftp's abort sends "IAC IP IAC" as urgent data, then
    // "DM ABOR"; the kernel takes the urgent IAC out of band, so the line arrives as DM + "ABOR".
    // Read as a verb it was refused (502), and the STOR it meant to abort committed the bytes sent so
    // far. No verb starts with 0xF2 (vsftpd matches "\377\364\362ABOR" for the same reason).
    if (line.length > 0 && line[0] === DM) line = line.subarray(1);
    if (line.length > 0) out.push({ line: line.toString(isUtf8(line) ? 'utf8' : 'latin1') });
  }

  /** Removes IAC commands (IAC IP, IAC DM, IAC WILL x …); IAC IAC stands for one 0xFF byte. */
  #stripTelnet(chunk: Buffer): Buffer {
    const out = Buffer.allocUnsafe(chunk.length);
    let n = 0;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (this.#state === STATE.option) {
        this.#state = STATE.normal;
        continue;
      }
      if (this.#state === STATE.iac) {
        this.#state = STATE.normal;
        if (b === IAC) out[n++] = IAC;
        else if (b >= 0xfb) this.#state = STATE.option; // WILL/WONT/DO/DONT carry one option byte
        else if (b < 0xf0) out[n++] = b; // a lone IAC (its DM went out of band): keep the byte
        continue;
      }
      if (b === IAC) this.#state = STATE.iac;
      else out[n++] = b;
    }
    return out.subarray(0, n);
  }
}
