// PROXY protocol v1 (text) and v2 (binary) on an accepted control socket: who the real client is
// when a load balancer (HAProxy send-proxy / send-proxy-v2) stands in front. Main thread.
// Invariants (https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt): the parser is pure and
// total (any byte string gives incomplete / error / done, never a throw); a header is at most 107
// bytes (v1) or maxV2Bytes (v2) and must arrive within timeoutMs, so a silent or hostile peer
// holds nothing for long; bytes after the header are handed back to the socket (unshift), never
// lost; only sources in the trusted list may send one.

import { BlockList, isIPv4, isIPv6, type Socket } from 'node:net';

export interface ProxyHeader {
  version: 1 | 2;
  /** LOCAL (v2) or UNKNOWN (v1): the proxy's own connection (health check); use the socket's addresses. */
  local: boolean;
  sourceAddress: string | null;
  sourcePort: number | null;
  destinationAddress: string | null;
  destinationPort: number | null;
}

export type ParseResult =
  | { state: 'incomplete' }
  | { state: 'error'; reason: string }
  | { state: 'done'; header: ProxyHeader; byteLength: number };

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V1_MAX_BYTES = 107; // spec 2.1: worst case "PROXY UNKNOWN ffff:…" with CRLF
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_FIXED_BYTES = 16;
export const PROXY_V2_DEFAULT_MAX_BYTES = 4096;

const INCOMPLETE: ParseResult = { state: 'incomplete' };
const fail = (reason: string): ParseResult => ({ state: 'error', reason });

/** Whether `buf` starts like `prefix` for as many bytes as both have. */
function startsLike(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length);
  return buf.subarray(0, n).equals(prefix.subarray(0, n));
}

/** Parses a header at the start of `buf` (which may hold more bytes after it). */
export function parseProxyHeader(buf: Buffer, maxV2Bytes = PROXY_V2_DEFAULT_MAX_BYTES): ParseResult {
  if (buf.length === 0) return INCOMPLETE;
  if (startsLike(buf, V1_PREFIX)) return buf.length < V1_PREFIX.length ? INCOMPLETE : parseV1(buf);
  if (startsLike(buf, V2_SIGNATURE)) return buf.length < V2_FIXED_BYTES ? INCOMPLETE : parseV2(buf, maxV2Bytes);
  return fail('no PROXY protocol signature');
}

function parseV1(buf: Buffer): ParseResult {
  const end = buf.indexOf('\r\n', 0, 'latin1');
  if (end === -1) return buf.length >= V1_MAX_BYTES ? fail('v1 header longer than 107 bytes') : INCOMPLETE;
  if (end + 2 > V1_MAX_BYTES) return fail('v1 header longer than 107 bytes');
  const line = buf.toString('latin1', 0, end);
  if (!/^[\x20-\x7e]*$/.test(line)) return fail('v1 header holds non-printable bytes');
  const fields = line.split(' ');
  const byteLength = end + 2;
  if (fields[1] === 'UNKNOWN') {
    // Spec 2.1: the rest of an UNKNOWN line is ignored.
    return { state: 'done', byteLength, header: { version: 1, local: true, sourceAddress: null, sourcePort: null, destinationAddress: null, destinationPort: null } };
  }
  if (fields.length !== 6) return fail('v1 header needs 6 fields');
  const [, family, src, dst, sport, dport] = fields as [string, string, string, string, string, string];
  const valid = family === 'TCP4' ? isIPv4 : family === 'TCP6' ? isIPv6 : null;
  if (!valid) return fail(`v1 family ${family.slice(0, 16)} not supported`);
  if (!valid(src) || !valid(dst)) return fail('v1 address does not match its family');
  const sourcePort = v1Port(sport);
  const destinationPort = v1Port(dport);
  if (sourcePort === null || destinationPort === null) return fail('v1 port is not 0..65535');
  return { state: 'done', byteLength, header: { version: 1, local: false, sourceAddress: src, sourcePort, destinationAddress: dst, destinationPort } };
}

function v1Port(text: string): number | null {
  if (!/^(0|[1-9]\d{0,4})$/.test(text)) return null;
  const port = Number(text);
  return port <= 65535 ? port : null;
}

function parseV2(buf: Buffer, maxV2Bytes: number): ParseResult {
  const versionCommand = buf[12]!;
  const familyProtocol = buf[13]!;
  const length = buf.readUInt16BE(14);
  if (versionCommand >> 4 !== 2) return fail('v2 version is not 2');
  const command = versionCommand & 0x0f;
  if (command > 1) return fail('v2 command is neither LOCAL nor PROXY');
  const byteLength = V2_FIXED_BYTES + length;
  if (byteLength > maxV2Bytes) return fail(`v2 header longer than ${maxV2Bytes} bytes`);
  if (buf.length < byteLength) return INCOMPLETE;
  const local: ProxyHeader = { version: 2, local: true, sourceAddress: null, sourcePort: null, destinationAddress: null, destinationPort: null };
  // Spec 2.2: LOCAL, and PROXY over an unspecified family, mean "use the real connection's addresses"
  // (TLVs, if any, are skipped: nothing here needs them).
  if (command === 0 || familyProtocol === 0x00) return { state: 'done', byteLength, header: local };
  const body = buf.subarray(V2_FIXED_BYTES, byteLength);
  if (familyProtocol === 0x11) {
    if (length < 12) return fail('v2 TCP4 address block too short');
    return {
      state: 'done',
      byteLength,
      header: { version: 2, local: false, sourceAddress: ipv4(body, 0), destinationAddress: ipv4(body, 4), sourcePort: body.readUInt16BE(8), destinationPort: body.readUInt16BE(10) },
    };
  }
  if (familyProtocol === 0x21) {
    if (length < 36) return fail('v2 TCP6 address block too short');
    return {
      state: 'done',
      byteLength,
      header: { version: 2, local: false, sourceAddress: ipv6(body, 0), destinationAddress: ipv6(body, 16), sourcePort: body.readUInt16BE(32), destinationPort: body.readUInt16BE(34) },
    };
  }
  return fail(`v2 family/protocol 0x${familyProtocol.toString(16)} is not TCP over IPv4 or IPv6`);
}

function ipv4(buf: Buffer, offset: number): string {
  return `${buf[offset]}.${buf[offset + 1]}.${buf[offset + 2]}.${buf[offset + 3]}`;
}

function ipv6(buf: Buffer, offset: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(offset + 2 * i).toString(16));
  const text = groups.join(':');
  // An IPv4-mapped source is an IPv4 client: keep its dotted form, as the socket layer would.
  if (/^0:0:0:0:0:ffff:/.test(text)) return `::ffff:${ipv4(buf, offset + 12)}`;
  return text;
}

export interface ReadHeaderOptions {
  timeoutMs: number;
  maxV2Bytes?: number;
}

export class ProxyHeaderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProxyHeaderError';
  }
}

/**
 * Reads one header from a freshly accepted (paused) socket. On success the socket is paused again
 * with any bytes that followed the header unshifted; on failure (bad header, timeout, close) the
 * promise rejects with ProxyHeaderError and the caller destroys the socket. Never throws synchronously.
 */
export function readProxyHeader(socket: Socket, options: ReadHeaderOptions): Promise<ProxyHeader> {
  const maxV2Bytes = options.maxV2Bytes ?? PROXY_V2_DEFAULT_MAX_BYTES;
  return new Promise<ProxyHeader>((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onGone);
      socket.off('close', onGone);
      socket.pause();
    };
    const failWith = (reason: string): void => {
      cleanup();
      reject(new ProxyHeaderError(reason));
    };
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const parsed = parseProxyHeader(buffered, maxV2Bytes);
      if (parsed.state === 'incomplete') {
        // Unreachable for well-formed input (the parser bounds both versions); a guard all the same.
        if (buffered.length > Math.max(maxV2Bytes, V1_MAX_BYTES)) failWith('header too long');
        return;
      }
      if (parsed.state === 'error') return failWith(parsed.reason);
      cleanup();
      const rest = buffered.subarray(parsed.byteLength);
      if (rest.length > 0) socket.unshift(rest);
      resolve(parsed.header);
    };
    const onGone = (): void => failWith('connection closed before a complete PROXY header');
    const timer = setTimeout(() => failWith(`no PROXY header within ${options.timeoutMs} ms`), options.timeoutMs);
    socket.on('data', onData);
    socket.once('end', onGone);
    socket.once('close', onGone);
    socket.resume();
  });
}

/** Addresses (and CIDR blocks) allowed to send PROXY headers; an empty list trusts every source. */
export class TrustedProxies {
  readonly #list = new BlockList();
  readonly #any: boolean;

  constructor(entries: readonly string[]) {
    this.#any = entries.length === 0;
    for (const entry of entries) {
      const [address = '', bitsText] = entry.trim().split('/');
      const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : null;
      const max = family === 'ipv4' ? 32 : 128;
      const bits = bitsText === undefined ? max : /^\d{1,3}$/.test(bitsText) ? Number(bitsText) : NaN;
      if (!family || !(bits >= 0 && bits <= max)) throw new RangeError(`not an IP address or CIDR block: ${entry}`);
      this.#list.addSubnet(address, bits, family);
    }
  }

  has(address: string | undefined): boolean {
    if (this.#any) return true;
    if (!address) return false;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped) return this.#list.check(mapped[1]!, 'ipv4');
    return this.#list.check(address, isIPv4(address) ? 'ipv4' : 'ipv6');
  }
}
