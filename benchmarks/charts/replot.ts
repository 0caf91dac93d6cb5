// Redraws the SVG charts of saved scale results without running anything:
//   node --import tsx benchmarks/charts/replot.ts scale-storm [scale-idle ...]
// Main thread. Invariant: reads benchmarks/results/<stem>.json, writes only <stem>-*.svg.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { writeScaleCharts, type ScaleDoc } from './scale-charts.ts';

const dir = fileURLToPath(new URL('../results/', import.meta.url));
for (const stem of process.argv.slice(2)) {
  const doc = JSON.parse(readFileSync(join(dir, `${stem}.json`), 'utf8')) as ScaleDoc;
  process.stdout.write(`${stem}: ${writeScaleCharts(doc, dir, stem).join(', ')}\n`);
}
