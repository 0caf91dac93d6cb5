// A small SVG line chart (no dependency): axes with "nice" ticks, one polyline per series, a
// legend, optional horizontal target line. Pure; any thread. Invariants: output is a standalone SVG
// document; text is XML-escaped; null points break a line instead of drawing it to zero.

export interface Series {
  name: string;
  points: [number, number | null][];
  /** Thin, translucent line (used for many per-session lines). */
  faint?: boolean;
  color?: string;
}

export interface ChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  width?: number;
  height?: number;
  yMin?: number;
  yMax?: number;
  logX?: boolean;
  /** Horizontal reference lines, e.g. a target. */
  hLines?: { y: number; label: string }[];
  legend?: boolean;
}

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function fmt(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${(v / 1e3).toPrecision(3)}k`;
  return String(Number(v.toPrecision(4)));
}

export function lineChart(spec: ChartSpec): string {
  const width = spec.width ?? 760;
  const height = spec.height ?? 420;
  const legendRows = spec.legend === false ? 0 : spec.series.filter((s) => !s.faint).length;
  const m = { left: 70, right: 20 + (legendRows ? 170 : 0), top: 40, bottom: 55 };
  const plotW = width - m.left - m.right;
  const plotH = height - m.top - m.bottom;
  const pts = spec.series.flatMap((s) => s.points.filter((p): p is [number, number] => p[1] !== null));
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  const tx = (x: number): number => (spec.logX ? Math.log10(Math.max(x, 1e-9)) : x);
  // reduce, not Math.min(...): charts may hold more points than a call takes arguments
  const lo = (v: number[]): number => v.reduce((m, x) => (x < m ? x : m), Infinity);
  const hi = (v: number[]): number => v.reduce((m, x) => (x > m ? x : m), -Infinity);
  let xLo = xs.length ? lo(xs.map(tx)) : 0;
  let xHi = xs.length ? hi(xs.map(tx)) : 1;
  if (xHi === xLo) {
    xLo -= 0.5;
    xHi += 0.5;
  }
  const yLo = spec.yMin ?? Math.min(0, lo(ys));
  let yHi = spec.yMax ?? Math.max(hi(ys), ...(spec.hLines ?? []).map((h) => h.y), yLo + 1e-9);
  if (spec.yMax === undefined) yHi = yHi + (yHi - yLo) * 0.05;
  const X = (x: number): number => m.left + ((tx(x) - xLo) / (xHi - xLo)) * plotW;
  const Y = (y: number): number => m.top + plotH - ((y - yLo) / (yHi - yLo)) * plotH;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  out.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(spec.title)}</text>`);
  // grid + ticks
  for (const t of niceTicks(yLo, yHi)) {
    out.push(`<line x1="${m.left}" x2="${m.left + plotW}" y1="${Y(t).toFixed(1)}" y2="${Y(t).toFixed(1)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${m.left - 6}" y="${(Y(t) + 4).toFixed(1)}" text-anchor="end">${fmt(t)}</text>`);
  }
  const xTicks = spec.logX
    ? [...new Set(xs)].sort((a, b) => a - b)
    : niceTicks(xLo, xHi);
  for (const t of xTicks) {
    out.push(`<line x1="${X(t).toFixed(1)}" x2="${X(t).toFixed(1)}" y1="${m.top}" y2="${m.top + plotH}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${X(t).toFixed(1)}" y="${m.top + plotH + 16}" text-anchor="middle">${fmt(t)}</text>`);
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${m.left + plotW / 2}" y="${height - 12}" text-anchor="middle">${esc(spec.xLabel)}</text>`);
  out.push(`<text transform="translate(16 ${m.top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(spec.yLabel)}</text>`);
  for (const h of spec.hLines ?? []) {
    out.push(`<line x1="${m.left}" x2="${m.left + plotW}" y1="${Y(h.y).toFixed(1)}" y2="${Y(h.y).toFixed(1)}" stroke="#555" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${m.left + 4}" y="${(Y(h.y) - 4).toFixed(1)}" fill="#555">${esc(h.label)}</text>`);
  }
  let legendIndex = 0;
  spec.series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length]!;
    const segments: string[][] = [[]];
    for (const [x, y] of s.points) {
      if (y === null) segments.push([]);
      else segments.at(-1)!.push(`${X(x).toFixed(1)},${Y(y).toFixed(1)}`);
    }
    for (const seg of segments) {
      if (seg.length === 0) continue;
      if (seg.length === 1) out.push(`<circle cx="${seg[0]!.split(',')[0]}" cy="${seg[0]!.split(',')[1]}" r="3" fill="${color}"/>`);
      else out.push(`<polyline fill="none" stroke="${color}" stroke-width="${s.faint ? 1 : 2}"${s.faint ? ' stroke-opacity="0.45"' : ''} points="${seg.join(' ')}"/>`);
      if (!s.faint && seg.length > 1 && seg.length <= 12) for (const p of seg) out.push(`<circle cx="${p.split(',')[0]}" cy="${p.split(',')[1]}" r="2.5" fill="${color}"/>`);
    }
    if (!s.faint && spec.legend !== false) {
      const ly = m.top + 10 + legendIndex++ * 18;
      const lx = m.left + plotW + 14;
      out.push(`<line x1="${lx}" x2="${lx + 18}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="3"/>`);
      out.push(`<text x="${lx + 24}" y="${ly + 4}">${esc(s.name)}</text>`);
    }
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
