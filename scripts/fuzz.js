// `npm run fuzz`: the property-based fuzz tests (every dist/test/**/fuzz-*.test.js: the API's, the
// CSI node's…) with a longer budget than CI gives them. Each test reads FUZZ_RUNS and FUZZ_SEED;
// here the runs are raised (FUZZ_RUNS, default 20 000) and the seed is FUZZ_SEED or a random one,
// printed first so that a failure can be replayed with the same seed.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function find(dir) {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) return find(full);
    return /^fuzz-.*\.test\.js$/.test(name) ? [full] : [];
  });
}

const files = find('dist/test').sort();
if (files.length === 0) {
  console.error('no fuzz tests found under dist/test (did the build run?)');
  process.exit(1);
}
const seed = process.env.FUZZ_SEED ?? String(Math.floor(Math.random() * 2 ** 31));
const runs = process.env.FUZZ_RUNS ?? '20000';
console.log(`fuzz: FUZZ_SEED=${seed} FUZZ_RUNS=${runs} (replay with: FUZZ_SEED=${seed} FUZZ_RUNS=${runs} npm run fuzz)`);
for (const f of files) console.log(`fuzz: ${f}`);
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env: { ...process.env, FUZZ_SEED: seed, FUZZ_RUNS: runs },
});
process.exit(result.status ?? 1);
