// No import cycles among src/, workers/ and native-free-ringbuf/src, type imports included: each
// layer depends one way (issue 16). The parser itself is checked on a made-up tree, so that a
// parser that finds nothing cannot pass the real check.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { describeCycles, findCycles, importGraph, sourceFiles, specifiers } from './import-graph.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('no import cycle among src/, workers/ and native-free-ringbuf/src (type imports included)', () => {
  const files = sourceFiles(['src', 'workers', 'native-free-ringbuf/src'].map((dir) => join(root, dir)));
  assert.ok(files.length > 100, `expected the whole tree, found ${files.length} files`);
  const graph = importGraph(files, { 'native-free-ringbuf': join(root, 'native-free-ringbuf/src/index.ts') });
  const edges = [...graph.values()].reduce((sum, list) => sum + list.length, 0);
  assert.ok(edges > files.length, `expected the imports of the tree, found ${edges} edges`);
  const cycles = findCycles(graph);
  assert.is(cycles.length, 0, `import cycles:\n${describeCycles(cycles, root)}`);
});

test('the parser reads every import form, comments aside', () => {
  const text = [
    "import { a } from './a.ts';",
    "import type { B } from './b.ts';",
    'import {',
    '  c,',
    '  type D,',
    "} from './c.ts';",
    "export { e } from './e.ts';",
    "export type { F } from './f.ts';",
    "export * from './g.ts';",
    "import './h.ts';",
    "const i = await import('./i.ts');",
    "const j = require('./j.js');",
    "new Worker(new URL('./k.mjs', import.meta.url));",
    "// import { z } from './commented.ts';",
    "/* import { y } from './block.ts'; */",
    "const s = 'from nowhere';",
  ].join('\n');
  assert.equal(specifiers(text).sort(), ['./a.ts', './b.ts', './c.ts', './e.ts', './f.ts', './g.ts', './h.ts', './i.ts', './j.js', './k.mjs'].sort());
});

test('a cycle through a type-only import is found; a one-way tree has none', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dropftp-cycles-'));
  try {
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'a.ts'), "import { b } from './sub/b.ts';\nexport const a = b;\n");
    writeFileSync(join(dir, 'sub/b.ts'), "import type { C } from '../c.ts';\nexport const b = 1 as unknown as C;\n");
    writeFileSync(join(dir, 'c.ts'), "export type C = number;\n");
    const files = sourceFiles([dir]);
    assert.is(files.length, 3);
    assert.is(findCycles(importGraph(files)).length, 0);
    writeFileSync(join(dir, 'c.ts'), "import type { a } from './a.ts';\nexport type C = typeof a;\n");
    const cycles = findCycles(importGraph(files));
    assert.is(cycles.length, 1);
    assert.is(cycles[0]!.length, 3);
    writeFileSync(join(dir, 'c.ts'), "import type { C as Self } from './c.ts';\nexport type C = number | Self[];\n");
    assert.is(findCycles(importGraph(files)).length, 1, 'a file importing itself is a cycle');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
