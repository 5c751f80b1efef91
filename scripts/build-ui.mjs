// Builds the web console: type-checks ui/ (its own tsconfig: DOM lib, preact's JSX), bundles
// ui/src/main.tsx with esbuild into dist/ui/console.js (and chunk-*.js for what it loads later:
// the layout library) and copies index.html and console.css beside it. The API server serves dist/ui/ at /ui/; nothing is fetched from anywhere else at run time.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'ui');

const tsc = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'ui', 'tsconfig.json')], { stdio: 'inherit' });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);

// Last build's files go (chunk names change); dist/ui/src/ is tsc's (the unit tests' copy of the model).
mkdirSync(out, { recursive: true });
for (const entry of readdirSync(out, { withFileTypes: true })) if (entry.isFile()) rmSync(join(out, entry.name));
await build({
  entryPoints: { console: join(root, 'ui', 'src', 'main.tsx') },
  outdir: out,
  chunkNames: 'chunk-[hash]',
  splitting: true,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  minify: true,
  sourcemap: true,
  legalComments: 'linked',
  logLevel: 'warning',
});
for (const file of ['index.html', 'console.css']) copyFileSync(join(root, 'ui', file), join(out, file));
