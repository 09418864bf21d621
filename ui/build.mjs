// Bundles the console (ui/src) into dist-ui/: one content-hashed script and stylesheet under
// assets/, index.html naming them, and the static files of ui/public. No source maps, no CDN:
// everything the page loads comes from keyward itself. Run by scripts/setup.sh when ui/ changed.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
export const DEFAULT_OUT = resolve(here, '..', 'dist-ui');

/** Builds into `outDir` (replaced whole, through a temporary folder beside it). */
export async function buildUi({ outDir = DEFAULT_OUT } = {}) {
  const tmp = `${outDir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const result = await build({
    entryPoints: { app: join(here, 'src/main.tsx'), style: join(here, 'src/styles.css') },
    outdir: join(tmp, 'assets'),
    entryNames: '[name]-[hash]',
    bundle: true,
    format: 'esm',
    target: ['chrome111', 'firefox115', 'safari16.4'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    metafile: true,
    logLevel: 'warning',
    absWorkingDir: resolve(here, '..'),
  });
  const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
  const script = outputs.find((f) => f.startsWith('app-') && f.endsWith('.js'));
  const style = outputs.find((f) => f.startsWith('style-') && f.endsWith('.css'));
  if (!script || !style) throw new Error(`ui build: expected app-*.js and style-*.css, got ${outputs.join(', ')}`);
  const html = readFileSync(join(here, 'index.html'), 'utf8').replace('%SCRIPT%', script).replace('%STYLE%', style);
  writeFileSync(join(tmp, 'index.html'), html);
  for (const f of readdirSync(join(here, 'public'))) copyFileSync(join(here, 'public', f), join(tmp, f));
  writeFileSync(join(tmp, '.built'), `${new Date().toISOString()}\n`);
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(dirname(outDir), { recursive: true });
  renameSync(tmp, outDir);
  const js = readFileSync(join(outDir, 'assets', script));
  return { outDir, script, style, jsBytes: js.length, jsGzipBytes: gzipSync(js, { level: 9 }).length };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await buildUi({ outDir: process.argv[2] ? resolve(process.argv[2]) : DEFAULT_OUT });
  console.error(`ui: ${out.script} ${(out.jsBytes / 1024).toFixed(1)} KiB (${(out.jsGzipBytes / 1024).toFixed(1)} KiB gzipped), ${out.style} -> ${out.outDir}`);
}
