// Test helper: a strict parser of the Prometheus text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/). Throws on anything a Prometheus
// server would reject or misread: a bad name, label or value; a family's TYPE after its samples or
// twice; a family's samples split apart; a duplicate series; histogram buckets that do not ascend,
// are not cumulative or disagree with _count. Test code only.

export interface Family {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help: string;
  /** Series text (`name{a="b"}`, labels as written) → value. */
  samples: Map<string, number>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(text: string, line: number): number {
  if (text === 'NaN') return NaN;
  if (text === '+Inf' || text === 'Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`line ${line}: bad value ${JSON.stringify(text)}`);
  return Number(text);
}

/** Reads `{a="x",b="y"}` from `text` at `at` (the brace); returns the labels and the index after `}`. */
function parseLabels(text: string, at: number, line: number): { labels: [string, string][]; end: number } {
  const labels: [string, string][] = [];
  let i = at + 1;
  for (;;) {
    if (text[i] === '}') return { labels, end: i + 1 };
    const eq = text.indexOf('=', i);
    if (eq < 0) throw new Error(`line ${line}: label without =`);
    const name = text.slice(i, eq);
    if (!LABEL_NAME.test(name)) throw new Error(`line ${line}: bad label name ${JSON.stringify(name)}`);
    if (labels.some(([n]) => n === name)) throw new Error(`line ${line}: label ${name} twice`);
    if (text[eq + 1] !== '"') throw new Error(`line ${line}: label value not quoted`);
    let value = '';
    let j = eq + 2;
    for (;; j++) {
      const c = text[j];
      if (c === undefined) throw new Error(`line ${line}: unterminated label value`);
      if (c === '"') break;
      if (c === '\\') {
        const next = text[++j];
        if (next === 'n') value += '\n';
        else if (next === '\\' || next === '"') value += next;
        else throw new Error(`line ${line}: bad escape \\${next}`);
      } else if (c === '\n') throw new Error(`line ${line}: raw newline in a label value`);
      else value += c;
    }
    labels.push([name, value]);
    i = j + 1;
    if (text[i] === ',') i++;
    else if (text[i] !== '}') throw new Error(`line ${line}: expected , or } after a label`);
  }
}

function familyOf(sample: string, families: Map<string, Family>): Family | undefined {
  for (const suffix of ['', '_bucket', '_sum', '_count']) {
    if (!sample.endsWith(suffix)) continue;
    const family = families.get(sample.slice(0, sample.length - suffix.length));
    if (family && (suffix === '' || family.type === 'histogram' || family.type === 'summary')) return family;
  }
  return undefined;
}

export function parseExposition(text: string): Map<string, Family> {
  if (text !== '' && !text.endsWith('\n')) throw new Error('the text must end with a newline');
  const families = new Map<string, Family>();
  const finished = new Set<string>();
  let current: Family | null = null;
  const seen = new Set<string>();
  const typed = new Set<string>();
  const lines = text.split('\n');
  lines.forEach((raw, index) => {
    const line = index + 1;
    if (raw === '') return;
    if (raw.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(raw);
      if (!m) return; // a plain comment
      const [, kind, name, rest = ''] = m;
      if (!NAME.test(name!)) throw new Error(`line ${line}: bad metric name ${name}`);
      let family = families.get(name!);
      if (family && finished.has(name!)) throw new Error(`line ${line}: ${name} described again after its samples`);
      if (!family) families.set(name!, (family = { name: name!, type: 'untyped', help: '', samples: new Map() }));
      if (kind === 'TYPE') {
        if (typed.has(name!)) throw new Error(`line ${line}: TYPE of ${name} twice`);
        typed.add(name!);
        if (!TYPES.has(rest)) throw new Error(`line ${line}: bad type ${rest}`);
        if (family.samples.size) throw new Error(`line ${line}: TYPE of ${name} after its samples`);
        family.type = rest as Family['type'];
      } else family.help = rest;
      if (current && current !== family) finished.add(current.name);
      current = family;
      return;
    }
    const brace = raw.indexOf('{');
    const space = raw.indexOf(' ');
    const nameEnd = brace >= 0 && (space < 0 || brace < space) ? brace : space;
    if (nameEnd <= 0) throw new Error(`line ${line}: no value: ${raw}`);
    const name = raw.slice(0, nameEnd);
    if (!NAME.test(name)) throw new Error(`line ${line}: bad metric name ${name}`);
    let labels: [string, string][] = [];
    let rest = raw.slice(nameEnd);
    if (raw[nameEnd] === '{') {
      const parsed = parseLabels(raw, nameEnd, line);
      labels = parsed.labels;
      rest = raw.slice(parsed.end);
    }
    const parts = rest.trim().split(/ +/);
    if (!rest.startsWith(' ') || parts.length < 1 || parts.length > 2) throw new Error(`line ${line}: expected " value [timestamp]": ${raw}`);
    const value = parseValue(parts[0]!, line);
    if (parts[1] !== undefined && !/^-?\d+$/.test(parts[1])) throw new Error(`line ${line}: bad timestamp`);
    let family = familyOf(name, families);
    if (!family) families.set(name, (family = { name, type: 'untyped', help: '', samples: new Map() }));
    if (finished.has(family.name)) throw new Error(`line ${line}: samples of ${family.name} are not together`);
    if (current && current !== family) finished.add(current.name);
    current = family;
    const id = `${name}{${[...labels].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}}`;
    if (seen.has(id)) throw new Error(`line ${line}: duplicate series ${id}`);
    seen.add(id);
    if (family.type === 'counter' && name === family.name && !(value >= 0)) throw new Error(`line ${line}: counter ${name} is ${value}`);
    family.samples.set(labels.length ? `${name}{${labels.map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`).join(',')}}` : name, value);
  });
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return families;
}

function checkHistogram(family: Family): void {
  // Group buckets by their labels without le.
  const groups = new Map<string, { le: number; count: number }[]>();
  const counts = new Map<string, number>();
  for (const [series, value] of family.samples) {
    const m = /^([^{]+)(?:\{(.*)\})?$/.exec(series)!;
    const labels = (m[2] ?? '').split(/,(?=[a-zA-Z_]+=")/).filter(Boolean);
    const rest = labels.filter((l) => !l.startsWith('le=')).sort().join(',');
    if (m[1] === `${family.name}_bucket`) {
      const le = labels.find((l) => l.startsWith('le='));
      if (!le) throw new Error(`${series}: bucket without le`);
      const bound = parseValue(le.slice(4, -1), 0);
      groups.set(rest, [...(groups.get(rest) ?? []), { le: bound, count: value }]);
    } else if (m[1] === `${family.name}_count`) counts.set(rest, value);
  }
  for (const [rest, buckets] of groups) {
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i]!.le > buckets[i - 1]!.le)) throw new Error(`${family.name}{${rest}}: buckets do not ascend`);
      if (buckets[i]!.count < buckets[i - 1]!.count) throw new Error(`${family.name}{${rest}}: buckets are not cumulative`);
    }
    const last = buckets.at(-1)!;
    if (last.le !== Infinity) throw new Error(`${family.name}{${rest}}: no +Inf bucket`);
    if (counts.get(rest) !== last.count) throw new Error(`${family.name}{${rest}}: _count ${counts.get(rest)} != +Inf bucket ${last.count}`);
  }
}

/** Every sample of every family, series text → value (handy for exact assertions). */
export function samplesOf(families: Map<string, Family>): Map<string, number> {
  const out = new Map<string, number>();
  for (const family of families.values()) for (const [series, value] of family.samples) out.set(series, value);
  return out;
}
