// The key under which a client address is counted: an IPv4 host (IPv4-mapped IPv6 unwrapped), or
// an IPv6 prefix (default /64, what one subscriber gets, so that rotating through a prefix does not
// evade limits). Any thread. Invariant: pure; equal keys mean "the same client" for every limit.

import { isIPv4, isIPv6 } from 'node:net';

export function addressKey(address: string | undefined, ipv6PrefixBits: number): string {
  if (!address) return '?';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (isIPv4(address)) return address;
  if (!isIPv6(address)) return address;
  const groups = expandIPv6(address.replace(/%.*$/, ''));
  if (ipv6PrefixBits >= 128) return groups.join(':');
  const keep: string[] = [];
  let bits = ipv6PrefixBits;
  for (const group of groups) {
    if (bits <= 0) break;
    const value = parseInt(group, 16);
    const take = Math.min(16, bits);
    keep.push((value & (0xffff << (16 - take)) & 0xffff).toString(16));
    bits -= take;
  }
  return `${keep.join(':')}::/${ipv6PrefixBits}`;
}

/** Eight hexadecimal groups, without leading zeros. */
function expandIPv6(address: string): string[] {
  let text = address;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...fill, ...right].map((g) => parseInt(g || '0', 16).toString(16));
}
