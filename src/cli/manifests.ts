// The objects of `-f FILE|DIR|-`: every .yaml/.yml/.json file of a directory (sorted; -R to
// descend), stdin for "-", each parsed with the API's manifest parser. Parse failures are
// collected, one line each, so the files that do parse can still be applied.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseManifests } from '../control/api/manifest.js';
import type { KubeObject } from '../control/api/types/meta.js';

export interface SourcedObject {
  object: KubeObject;
  /** The file it came from, as named on the command line ("-" is stdin, shown as STDIN). */
  source: string;
}

export interface ManifestSet {
  objects: SourcedObject[];
  /** One line per file that could not be read or parsed. */
  errors: string[];
}

const EXTENSIONS = /\.(ya?ml|json)$/i;

async function filesOf(path: string, recursive: boolean): Promise<string[]> {
  const info = await stat(path);
  if (!info.isDirectory()) return [path];
  const out: string[] = [];
  for (const entry of (await readdir(path, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const full = join(path, entry.name);
    if (entry.isDirectory()) {
      if (recursive) out.push(...(await filesOf(full, true)));
    } else if (EXTENSIONS.test(entry.name)) {
      out.push(full);
    }
  }
  return out;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

/** The first line of a parser message (the yaml package appends a code frame). */
function firstLine(message: string): string {
  return (message.split('\n').find((l) => l.trim() !== '') ?? message).trim().replace(/:$/, '');
}

export async function readManifests(paths: readonly string[], recursive = false, stdin: () => Promise<string> = readStdin): Promise<ManifestSet> {
  const set: ManifestSet = { objects: [], errors: [] };
  for (const path of paths) {
    let files: string[];
    if (path === '-') {
      files = ['-'];
    } else {
      try {
        files = await filesOf(path, recursive);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        set.errors.push(code === 'ENOENT' ? `error: the path "${path}" does not exist` : `error: ${path}: ${(err as Error).message}`);
        continue;
      }
      if (files.length === 0) set.errors.push(`error: no manifests in ${path} (no .yaml, .yml or .json file)`);
    }
    for (const file of files) {
      const source = file === '-' ? 'STDIN' : file;
      try {
        const text = file === '-' ? await stdin() : await readFile(file, 'utf8');
        for (const object of parseManifests(text, source)) set.objects.push({ object, source });
      } catch (err) {
        set.errors.push(`error: error parsing ${firstLine((err as Error).message)}`);
      }
    }
  }
  return set;
}
