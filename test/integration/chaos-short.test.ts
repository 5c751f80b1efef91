// The chaos campaign (bench/chaos-campaign.ts, `npm run chaos`), short and with a fixed seed: a few
// rounds of kill -9 against `stowage up --nodes 3`, the standalone driver, a shim or a container in
// the middle of a mixed workload, each followed by the invariant checks. Any violation fails the
// test with the campaign's own report (round, kind, detail), which `npm run chaos -- --seed 11
// --from-round R` replays. The campaign cleans up after itself; the test checks that too.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { formatSummary, runCampaign } from '../../bench/chaos-campaign.js';
import { needsRoot } from '../support/driver-harness.js';
import { leftovers } from '../support/host-state.js';

const SEED = 11;
const ROUNDS = 4;

describe('chaos campaign, short', { skip: needsRoot, timeout: 180_000 }, () => {
  it(`survives ${ROUNDS} rounds of kill -9 with seed ${SEED}, leaving nothing behind`, async () => {
    const lines: string[] = [];
    const result = await runCampaign({ rounds: ROUNDS, seed: SEED, log: (l) => lines.push(l) });
    const report = `${lines.join('\n')}\n${formatSummary(result)}`;
    assert.equal(result.roundsRun, ROUNDS, report);
    assert.deepEqual(result.violations, [], report);
    assert.equal(result.roundsSurvived, ROUNDS, report);
    assert.equal(result.writesLost, 0, report);
    assert.equal(result.orphans, 0, report);
    assert.ok(result.dir !== '', report);
    assert.deepEqual(leftovers(result.dir), [], `nothing of the campaign stays mounted or attached\n${report}`);
    assert.equal(existsSync(result.dir), false, `the campaign's temp dir is removed\n${report}`);
  });
});
