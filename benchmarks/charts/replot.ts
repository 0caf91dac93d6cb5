// Redraws the SVG charts, markdown table and target verdicts of saved scale results without
// running anything:  node --import tsx benchmarks/charts/replot.ts scale-storm [scale-idle ...]
// Main thread. Invariant: the measurements in <stem>.json are never changed, only what is derived.

import { readFileSync, writeFileSync } from 'node:fs';
import { judgeTargets, markdownTable } from '../loadgen/report.ts';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { writeScaleCharts, type ScaleDoc } from './scale-charts.ts';

const dir = fileURLToPath(new URL('../results/', import.meta.url));
for (const stem of process.argv.slice(2)) {
  const file = join(dir, `${stem}.json`);
  const doc = JSON.parse(readFileSync(file, 'utf8')) as ScaleDoc & { params: { sizeBytes: number }; markdown: string; targets: unknown };
  doc.markdown = markdownTable(doc.scenario, doc.runs, doc.params.sizeBytes);
  doc.targets = judgeTargets(doc.scenario, doc.runs);
  writeFileSync(file, `${JSON.stringify(doc, null, 1)}\n`);
  process.stdout.write(`${stem}: ${writeScaleCharts(doc, dir, stem).join(', ')}\n`);
}
