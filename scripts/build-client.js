#!/usr/bin/env node
/**
 * Builds `libs/client` into an installable package (`libs/client/dist`): ESM and CommonJS,
 * each with its `.d.ts`, by running the TypeScript compiler twice (no bundler is installed).
 *
 * The client imports `@app/protocol`, a path alias that exists only in this repository. The
 * protocol code it needs (types, error codes, reducers) is compiled into the same `dist`
 * (`dist/<format>/protocol/src`), and every `@app/protocol` import is rewritten to a
 * relative path to it: the package is self-contained, and client and server still share one
 * source of the contract. ESM imports also get the `.js` extensions Node and browsers need.
 * Any other import is refused here, except `socket.io-client` in the Socket.IO transport
 * (an optional peer dependency, loaded only when that transport is chosen).
 *
 * Usage: `npm run build:client` (also run by `npm pack` in libs/client, as its `prepack`).
 */
const fs = require('node:fs');
const path = require('node:path');
const ts = require('typescript');

const root = path.resolve(__dirname, '..');
const libs = path.join(root, 'libs');
const packageDir = path.join(libs, 'client');
const outRoot = path.join(packageDir, 'dist');
const entries = ['libs/client/src/index.ts', 'libs/client/src/transports/socket-io.ts'].map((file) => path.join(root, file));

/** Path aliases the package may use, and where they point. */
const ALIASES = { '@app/protocol': path.join(libs, 'protocol/src') };
/** Bare imports allowed, and the only file each may appear in. */
const PEERS = { 'socket.io-client': path.join(libs, 'client/src/transports/socket-io.ts') };

const FORMATS = [
  { name: 'esm', module: ts.ModuleKind.ES2020, type: 'module', extensions: true },
  { name: 'cjs', module: ts.ModuleKind.CommonJS, type: 'commonjs', extensions: false },
];

fs.rmSync(outRoot, { recursive: true, force: true });
for (const format of FORMATS) build(format);
console.error(`built ${path.relative(root, outRoot)} (${FORMATS.map((f) => f.name).join(', ')})`);

function build(format) {
  const outDir = path.join(outRoot, format.name);
  const options = {
    target: ts.ScriptTarget.ES2020,
    module: format.module,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
    types: [],
    strict: true,
    esModuleInterop: true,
    skipLibCheck: true,
    declaration: true,
    removeComments: false,
    rootDir: libs,
    outDir,
    baseUrl: root,
    paths: Object.fromEntries(
      Object.entries(ALIASES).flatMap(([alias, target]) => [
        [alias, [target]],
        [`${alias}/*`, [`${target}/*`]],
      ]),
    ),
  };
  const program = ts.createProgram(entries, options);
  const outside = program
    .getSourceFiles()
    .filter((file) => !file.isDeclarationFile && !isInside(file.fileName, packageDir) && !isInside(file.fileName, ALIASES['@app/protocol']));
  if (outside.length) fail(`the client package may only contain libs/client and libs/protocol; it reached ${outside.map((f) => f.fileName).join(', ')}`);

  const rewrite = (context) => (node) => rewriteSpecifiers(node, context, format);
  const result = program.emit(undefined, undefined, undefined, false, { before: [rewrite], afterDeclarations: [rewrite] });
  const diagnostics = [...ts.getPreEmitDiagnostics(program), ...result.diagnostics];
  if (diagnostics.length) {
    fail(ts.formatDiagnosticsWithColorAndContext(diagnostics, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => root, getNewLine: () => '\n' }));
  }
  // Tells Node (and bundlers) which module system the `.js` files below are in.
  fs.writeFileSync(path.join(outDir, 'package.json'), `${JSON.stringify({ type: format.type }, null, 2)}\n`);
}

/** Rewrites the module specifier of every import, export, `import()` and `import("…")` type in a file. */
function rewriteSpecifiers(file, context, format) {
  const { factory } = context;
  const source = file.fileName;
  const specifier = (literal) => factory.createStringLiteral(resolveSpecifier(literal.text, source, format));
  const visit = (node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      return ts.isImportDeclaration(node)
        ? factory.updateImportDeclaration(node, node.modifiers, node.importClause, specifier(node.moduleSpecifier), node.attributes)
        : factory.updateExportDeclaration(node, node.modifiers, node.isTypeOnly, node.exportClause, specifier(node.moduleSpecifier), node.attributes);
    }
    if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments.length && ts.isStringLiteral(node.arguments[0])) {
      return factory.updateCallExpression(node, node.expression, node.typeArguments, [specifier(node.arguments[0]), ...node.arguments.slice(1)]);
    }
    if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      const argument = factory.updateLiteralTypeNode(node.argument, specifier(node.argument.literal));
      return factory.updateImportTypeNode(node, argument, node.attributes, node.qualifier, node.typeArguments, node.isTypeOf);
    }
    return ts.visitEachChild(node, visit, context);
  };
  return ts.visitNode(file, visit);
}

/** Where an import of `spec` from `source` points in the built package. */
function resolveSpecifier(spec, source, format) {
  for (const [alias, target] of Object.entries(ALIASES)) {
    if (spec === alias || spec.startsWith(`${alias}/`)) {
      return relativeImport(path.join(target, spec.slice(alias.length)), source, format);
    }
  }
  if (spec.startsWith('.')) return relativeImport(path.resolve(path.dirname(source), spec), source, format);
  if (PEERS[spec] === source) return spec;
  return fail(
    `${path.relative(root, source)} imports '${spec}': the client package may import only its own files, @app/protocol, and socket.io-client in the Socket.IO transport`,
  );
}

function relativeImport(target, source, format) {
  let file;
  if (fs.existsSync(`${target}.ts`)) file = format.extensions ? `${target}.js` : target;
  else if (fs.existsSync(path.join(target, 'index.ts'))) file = path.join(target, format.extensions ? 'index.js' : 'index');
  else fail(`cannot resolve ${target} imported by ${source}`);
  const relative = path.relative(path.dirname(source), file).split(path.sep).join('/');
  return relative.startsWith('.') ? relative : `./${relative}`;
}

function isInside(file, dir) {
  const relative = path.relative(dir, file);
  return !relative.startsWith('..') && !path.isAbsolute(relative);
}

function fail(message) {
  console.error(`build-client: ${message}`);
  process.exit(1);
}
