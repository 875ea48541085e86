import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ModuleKind, ScriptTarget, transpileModule } from 'typescript';

/**
 * A bench script as plain JavaScript for plain node, with the bench files it imports
 * (`./<name>`) beside it in dist/bench/, so node_modules resolve as from the repository. The
 * baseline servers run this way, as the gateway pods run their build: under ts-node a
 * process starts with tens of MB of V8 heap its compiler used and left mostly free, which
 * its first allocations fill without growing RSS, so a baseline under it would look lighter
 * per socket than the same code built. Such a script may import packages and `./` bench
 * files, not `@app/*` paths. (A file of its own: the scripts it builds must not load the
 * TypeScript compiler by importing it.)
 */
export function plainScript(script: string): string {
  const built = plainScripts.get(script);
  if (built) return built;
  const outDir = join(__dirname, '..', 'dist', 'bench');
  mkdirSync(outDir, { recursive: true });
  const emit = (file: string): string => {
    const source = readFileSync(file, 'utf8');
    const { outputText } = transpileModule(source, {
      compilerOptions: { module: ModuleKind.CommonJS, target: ScriptTarget.ES2022, esModuleInterop: true },
      fileName: file,
    });
    const out = join(outDir, basename(file).replace(/\.ts$/, '.js'));
    writeFileSync(out, outputText);
    for (const [, local] of source.matchAll(/from '\.\/([\w-]+)'/g)) emit(join(dirname(file), `${local}.ts`));
    return out;
  };
  const out = emit(script);
  plainScripts.set(script, out);
  return out;
}
const plainScripts = new Map<string, string>();
