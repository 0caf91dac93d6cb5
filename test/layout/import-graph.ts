// The import graph of our own sources, read from their import/export statements (type-only
// imports included: a cycle of types is a cycle of concepts), and its cycles (Tarjan's strongly
// connected components). Test-side only; reads files, runs none of them.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const SOURCE = /\.(ts|mts|mjs|js)$/;

/** Every source file under the given folders (absolute paths), node_modules and dot folders skipped. */
export function sourceFiles(roots: string[]): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      if (name === 'node_modules' || name.startsWith('.')) continue;
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (SOURCE.test(name) && !name.endsWith('.d.ts')) out.push(path);
    }
  };
  for (const root of roots) walk(root);
  return out.sort();
}

/** Comments out, strings kept: an import named in a comment is not an import. */
function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/^\s*\/\/.*$/gm, '');
}

/** The module specifiers a file names: static imports and re-exports (type-only too), dynamic import(), require(). */
export function specifiers(text: string): string[] {
  const code = stripComments(text);
  const out: string[] = [];
  const patterns = [
    /(?:^|[;\n])\s*(?:import|export)\s+(?:type\s+)?[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /(?:^|[;\n])\s*import\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\bnew\s+URL\s*\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*,\s*import\.meta\.url\s*\)/g,
  ];
  for (const pattern of patterns) for (const match of code.matchAll(pattern)) out.push(match[1]!);
  return out;
}

/**
 * file → the files of `files` it imports. Relative specifiers resolve against the file; a bare
 * specifier resolves through `packages` (name → entry file); anything else (node:, npm) is outside.
 */
export function importGraph(files: string[], packages: Record<string, string> = {}): Map<string, string[]> {
  const known = new Set(files);
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const edges = new Set<string>();
    for (const spec of specifiers(readFileSync(file, 'utf8'))) {
      let target: string | undefined;
      if (spec.startsWith('.')) {
        const base = resolve(dirname(file), spec);
        target = [base, base.replace(/\.js$/, '.ts'), `${base}.ts`, join(base, 'index.ts')].find((candidate) => known.has(candidate));
      } else {
        target = packages[spec];
      }
      if (target && known.has(target)) edges.add(target);
    }
    graph.set(file, [...edges]);
  }
  return graph;
}

/** Every cycle as the files of one strongly connected component (size > 1, or a file importing itself). */
export function findCycles(graph: Map<string, string[]>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (start: string): void => {
    // Iterative Tarjan: a deep chain of imports must not overflow the JS stack.
    const frames: { node: string; next: number }[] = [{ node: start, next: 0 }];
    index.set(start, counter);
    low.set(start, counter++);
    stack.push(start);
    onStack.add(start);
    while (frames.length) {
      const frame = frames[frames.length - 1]!;
      const edges = graph.get(frame.node) ?? [];
      if (frame.next < edges.length) {
        const to = edges[frame.next++]!;
        if (!index.has(to)) {
          index.set(to, counter);
          low.set(to, counter++);
          stack.push(to);
          onStack.add(to);
          frames.push({ node: to, next: 0 });
        } else if (onStack.has(to)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, index.get(to)!));
        }
        continue;
      }
      frames.pop();
      const parent = frames[frames.length - 1];
      if (parent) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(frame.node)!));
      if (low.get(frame.node) === index.get(frame.node)) {
        const component: string[] = [];
        let member: string;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          component.push(member);
        } while (member !== frame.node);
        if (component.length > 1 || edges.includes(frame.node)) cycles.push(component.sort());
      }
    }
  };
  for (const node of graph.keys()) if (!index.has(node)) visit(node);
  return cycles;
}

export function describeCycles(cycles: string[][], root: string): string {
  return cycles.map((cycle) => `  [${cycle.length} files] ${cycle.map((file) => relative(root, file)).join(' <-> ')}`).join('\n');
}
