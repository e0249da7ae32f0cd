import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/*
 * A deliberately tiny bundler for the browser client: it joins the ES
 * modules tsc emitted for one entry into one module, so the hub can serve
 * the client as a single file without a build tool. It accepts only the
 * subset of module syntax the client is written in, and refuses anything
 * else loudly instead of producing a broken file:
 *   - `import { a, b } from './x.js'` (named, relative, no renaming),
 *   - `export` on top-level declarations, `export { a } from './x.js'` in the entry,
 *   - top-level names unique across all the modules.
 * `externals` maps a module path to a URL that stays an import in the output.
 */
export interface BundleOptions {
  readonly externals?: Readonly<Record<string, string>>;
}

const IMPORT = /^import\s+([\s\S]*?)\s+from\s+['"]([^'"]+)['"];?[ \t]*$/gm;
const REEXPORT = /^export\s+\{([^}]*)\}\s+from\s+['"]([^'"]+)['"];?[ \t]*$/gm;
const DECLARATION = /^(?:export\s+)?(?:async\s+)?(?:function\*?|class|const|let|var)\s+([A-Za-z_$][\w$]*)/gm;

export class BundleError extends Error {}

export function bundle(entry: string, options: BundleOptions = {}): string {
  const externals = new Map(Object.entries(options.externals ?? {}).map(([path, url]) => [resolve(path), url]));
  const order: string[] = [];
  const visiting = new Set<string>();
  const sources = new Map<string, string>();

  const visit = (file: string) => {
    if (sources.has(file)) return;
    if (visiting.has(file)) throw new BundleError(`import cycle through ${file}`);
    visiting.add(file);
    const text = readFileSync(file, 'utf8');
    for (const pattern of [IMPORT, REEXPORT]) {
      for (const match of text.matchAll(pattern)) {
        const specifier = match[2]!;
        if (!specifier.startsWith('.')) throw new BundleError(`${file}: bare import '${specifier}' cannot be bundled`);
        const target = resolve(dirname(file), specifier);
        if (!externals.has(target)) visit(target);
      }
    }
    visiting.delete(file);
    sources.set(file, text);
    order.push(file);
  };
  const entryPath = resolve(entry);
  visit(entryPath);

  const declared = new Map<string, string>();
  const reexports: string[] = [];
  const externalImports: string[] = [];
  const bodies: string[] = [];
  for (const file of order) {
    const isEntry = file === entryPath;
    let text = sources.get(file)!.replace(/^\/\/# sourceMappingURL=.*$/gm, '');
    text = text.replace(IMPORT, (_all, clause: string, specifier: string) => {
      const target = resolve(dirname(file), specifier);
      const external = externals.get(target);
      if (external !== undefined) {
        externalImports.push(`import ${clause} from ${JSON.stringify(external)};`);
        return '';
      }
      if (!/^\{[\s\w$,]*\}$/.test(clause.trim()) || /\bas\b/.test(clause)) {
        throw new BundleError(`${file}: only named imports without renaming can be bundled (${clause.trim()})`);
      }
      return '';
    });
    text = text.replace(REEXPORT, (_all, names: string) => {
      if (isEntry) reexports.push(...names.split(',').map((n) => n.trim()).filter((n) => n !== ''));
      return '';
    });
    if (!isEntry) text = text.replace(/^export\s+(?=(?:async\s+)?(?:function|class|const|let|var)\b)/gm, '');
    if (/^export\s+(?:default|\*)/m.test(text)) throw new BundleError(`${file}: default and star exports cannot be bundled`);
    for (const match of text.matchAll(DECLARATION)) {
      const name = match[1]!;
      const other = declared.get(name);
      if (other !== undefined) throw new BundleError(`'${name}' is declared at top level in both ${other} and ${file}`);
      declared.set(name, file);
    }
    bodies.push(text.trim());
  }
  const exportLine = reexports.length > 0 ? `\nexport { ${reexports.join(', ')} };\n` : '\n';
  return `${[...new Set(externalImports)].join('\n')}\n${bodies.join('\n\n')}\n${exportLine}`.trimStart();
}
