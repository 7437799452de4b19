/**
 * The layering stays real: no import cycle between the folders of src/ (nor between files), and no command
 * module of src/cli imports another command (shared CLI helpers live in non-command modules or below).
 * A static scan of the import lines: every `import … from './x.ts'` / `export … from` / `import('./x.ts')`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/**
 * Relative imports of a file, resolved to absolute paths. `typeOnly: false` leaves out `import type` (erased
 * at run time, so a cycle through one cannot bite); folders count type imports too (they are dependencies).
 */
function importsOf(file: string, typeOnly: boolean): string[] {
  const text = readFileSync(file, 'utf8');
  const statements = [...text.matchAll(/(?:^|\n)\s*(import|export)(\s+type)?\s[^;]*?from\s+'([^']+)'/g)]
    .filter((m) => typeOnly || !m[2])
    .map((m) => m[3]);
  const bare = [...text.matchAll(/(?:^|\n)\s*import\s+'([^']+)'/g), ...text.matchAll(/import\(\s*'([^']+)'\s*\)/g)].map((m) => m[1]);
  return [...statements, ...bare].filter((s) => s.startsWith('.')).map((s) => resolve(dirname(file), s));
}

const files = sourceFiles(SRC);
const graph = new Map(files.map((f) => [f, importsOf(f, true)]));
const runtimeGraph = new Map(files.map((f) => [f, importsOf(f, false)]));
const folderOf = (f: string) => relative(SRC, f).split('/')[0];

/** Strongly connected components with more than one node (Tarjan). */
function cycles(nodes: string[], edges: (n: string) => string[]): string[][] {
  let index = 0;
  const idx = new Map<string, number>(),
    low = new Map<string, number>(),
    stack: string[] = [],
    on = new Set<string>(),
    out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of edges(v)) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const n of nodes) if (!idx.has(n)) visit(n);
  return out;
}

test('every relative import resolves to a file in src/', () => {
  const missing = [...graph].flatMap(([f, deps]) =>
    deps.filter((d) => !graph.has(d)).map((d) => `${relative(SRC, f)} → ${relative(SRC, d)}`),
  );
  assert.deepEqual(missing, []);
});

test('no import cycle between files of src/ (run-time imports)', () => {
  const found = cycles(files, (f) => runtimeGraph.get(f)!.filter((d) => graph.has(d)));
  assert.deepEqual(
    found.map((c) => c.map((f) => relative(SRC, f))),
    [],
  );
});

test('no import cycle between the folders of src/', () => {
  const folderEdges = new Map<string, Set<string>>();
  for (const [f, deps] of graph)
    for (const d of deps) {
      if (folderOf(f) === folderOf(d)) continue;
      if (!folderEdges.has(folderOf(f))) folderEdges.set(folderOf(f), new Set());
      folderEdges.get(folderOf(f))!.add(folderOf(d));
    }
  const found = cycles([...new Set(files.map(folderOf))], (f) => [...(folderEdges.get(f) ?? [])]);
  // each cycle with the imports that make it, so the message says which import to move
  const described = found.map((c) => {
    const members = new Set(c);
    const edges = [...graph].flatMap(([f, deps]) =>
      deps
        .filter((d) => members.has(folderOf(f)) && members.has(folderOf(d)) && folderOf(f) !== folderOf(d))
        .map((d) => `${relative(SRC, f)} → ${relative(SRC, d)}`),
    );
    const unique = [...new Set(edges)];
    return `${c.join(' ↔ ')}: ${unique.slice(0, 12).join(', ')}${unique.length > 12 ? `, … (${unique.length} imports)` : ''}`;
  });
  assert.deepEqual(described, []);
});

test('no src/cli command module imports another command module (only main.ts wires them)', () => {
  const cli = files.filter((f) => folderOf(f) === 'cli');
  const isCommand = (f: string) => /export function \w+Command\(/.test(readFileSync(f, 'utf8'));
  const bad = cli
    .filter((f) => !f.endsWith('/main.ts'))
    .flatMap((f) =>
      graph
        .get(f)!
        .filter((d) => cli.includes(d) && isCommand(d))
        .map((d) => `${relative(SRC, f)} → ${relative(SRC, d)}`),
    );
  assert.deepEqual(bad, []);
});

test('only src/cli imports commander, and nothing below src/cli imports src/cli', () => {
  const bad = files
    .filter((f) => folderOf(f) !== 'cli')
    .flatMap((f) => {
      const text = readFileSync(f, 'utf8');
      return [
        ...(/from 'commander'/.test(text) ? [`${relative(SRC, f)} imports commander`] : []),
        ...graph
          .get(f)!
          .filter((d) => folderOf(d) === 'cli')
          .map((d) => `${relative(SRC, f)} → ${relative(SRC, d)}`),
      ];
    });
  assert.deepEqual(bad, []);
});
