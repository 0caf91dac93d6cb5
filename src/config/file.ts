// Reads the YAML configuration file into option key → { value, line }, rejecting unknown keys and
// parse errors with the file name and line. Main thread, at start-up and on SIGHUP. Invariants:
// values are not type-checked here (load.ts parses every source the same way) but each keeps the
// line of its node, so any later error still names `file:line`; duplicate keys are errors.

import { basename } from 'node:path';
import { LineCounter, isMap, isScalar, parseDocument, type Node, type Pair } from 'yaml';
import { OPTION_BY_KEY, OPTIONS, removedOption } from './schema.ts';

export interface FileValue {
  value: unknown;
  line: number;
  /** For map options: entry name → field → line. */
  fieldLines?: Record<string, Record<string, number>>;
}

export interface FileRead {
  values: Map<string, FileValue>;
  problems: string[];
}

const SECTIONS = new Set(OPTIONS.flatMap((o) => o.key.split('.').slice(0, -1).map((_, i, parts) => parts.slice(0, i + 1).join('.'))));

/** Levenshtein distance (small strings: option keys). */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

/** "unknown option" plus the nearest known key when one is close. */
export function unknownKey(key: string, known: Iterable<string> = OPTION_BY_KEY.keys()): string {
  const removed = removedOption(key);
  if (removed) return removed;
  let best = '';
  let bestScore = Infinity;
  const last = key.split('.').pop()!.toLowerCase();
  for (const candidate of known) {
    const score = Math.min(distance(key.toLowerCase(), candidate.toLowerCase()), distance(last, candidate.split('.').pop()!.toLowerCase()) + 1);
    if (score < bestScore) [best, bestScore] = [candidate, score];
  }
  return bestScore <= Math.max(2, Math.floor(key.length / 3)) ? `unknown option (did you mean ${best}?)` : 'unknown option';
}

export function readConfigText(text: string, fileName: string): FileRead {
  const name = basename(fileName);
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const problems: string[] = [];
  const values = new Map<string, FileValue>();
  for (const error of doc.errors) {
    const line = error.linePos?.[0]?.line ?? lines.linePos(error.pos[0]).line;
    problems.push(`${name}:${line}: ${error.message.split('\n')[0]}`);
  }
  if (problems.length) return { values, problems };
  const lineOf = (node: Node | Pair | null | undefined): number => {
    const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
    return range ? lines.linePos(range[0]).line : 1;
  };
  const walk = (node: unknown, prefix: string, line: number): void => {
    if (node === null || node === undefined || (isScalar(node) && node.value === null)) return; // empty section
    if (!isMap(node)) {
      problems.push(`${name}:${line}: ${prefix || '(top level)'}: expected a map of options, got ${isScalar(node) ? JSON.stringify(node.value) : 'a list'}`);
      return;
    }
    for (const pair of node.items) {
      const keyNode = pair.key as Node | null;
      const keyLine = lineOf(keyNode);
      const keyText = isScalar(keyNode) ? String(keyNode.value) : '?';
      const key = prefix ? `${prefix}.${keyText}` : keyText;
      const option = OPTION_BY_KEY.get(key);
      const valueNode = pair.value as Node | null;
      const valueLine = valueNode ? lineOf(valueNode) : keyLine;
      if (option) {
        const value = valueNode ? valueNode.toJSON() : null;
        const entry: FileValue = { value, line: valueLine };
        if (option.kind === 'map' && isMap(valueNode)) {
          entry.fieldLines = {};
          for (const item of valueNode.items) {
            const fields: Record<string, number> = { '': lineOf(item.key as Node) };
            if (isMap(item.value)) for (const f of item.value.items) fields[String((f.key as { value?: unknown })?.value)] = lineOf(f.key as Node);
            entry.fieldLines[String((item.key as { value?: unknown })?.value)] = fields;
          }
        }
        values.set(key, entry);
      } else if (SECTIONS.has(key)) {
        walk(valueNode, key, valueLine);
      } else {
        problems.push(`${name}:${keyLine}: ${key}: ${unknownKey(key)}`);
      }
    }
  };
  walk(doc.contents, '', 1);
  return { values, problems };
}
