/**
 * `npm run chaos -- --rounds N --seed S`: the chaos campaign of chaos-campaign.ts, from the command
 * line. Prints one line per round, then a summary — rounds survived out of rounds run, kills per
 * component, orphans, acknowledged writes lost, every invariant violation with its round — and
 * exits 1 when there was any violation (2 on bad arguments, 130 after SIGINT). Unlike the other
 * benches this one asserts: a violation is a product bug (or a harness one) to reproduce with the
 * printed seed and round.
 *
 *   node dist/bench/chaos.js [--rounds 20] [--seed 1] [--from-round 1] [--pool-size 512Mi]
 *                            [--settle-timeout 60] [--stop-on-violation]
 *                            [--log-dir DIR]   (up's and the driver's output, kept)
 *
 * SIGINT (Ctrl-C) ends the current round early and cleans up everything before exiting; a second
 * SIGINT exits at once (whatever is left stays under the printed temp dir).
 */
import { parseArgs } from 'node:util';
import { formatSummary, runCampaign } from './chaos-campaign.js';

const OPTIONS = {
  rounds: { type: 'string', default: '20' },
  seed: { type: 'string', default: '1' },
  'from-round': { type: 'string', default: '1' },
  'pool-size': { type: 'string', default: '512Mi' },
  'settle-timeout': { type: 'string', default: '60' },
  'stop-on-violation': { type: 'boolean', default: false },
  'log-dir': { type: 'string' },
} as const;

async function main(): Promise<number> {
  let values: ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>['values'];
  try {
    ({ values } = parseArgs({ options: OPTIONS }));
  } catch (err) {
    process.stderr.write(`chaos: ${(err as Error).message}\n`);
    return 2;
  }
  const rounds = Number(values.rounds);
  const seed = Number(values.seed);
  const fromRound = Number(values['from-round']);
  const settle = Number(values['settle-timeout']);
  if (![rounds, seed, fromRound, settle].every((n) => Number.isSafeInteger(n) && n >= 0) || rounds < 1 || fromRound < 1) {
    process.stderr.write('chaos: --rounds, --from-round (≥ 1), --seed and --settle-timeout (seconds) must be whole numbers\n');
    return 2;
  }
  const abort = new AbortController();
  let interrupts = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    interrupts += 1;
    if (interrupts > 1) process.exit(130);
    process.stderr.write(`chaos: ${sig}: finishing this round's step, then cleaning up (again to exit at once)\n`);
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const result = await runCampaign({
    rounds,
    seed,
    fromRound,
    poolSize: values['pool-size'],
    settleTimeoutMs: settle * 1000,
    stopOnViolation: values['stop-on-violation'],
    ...(values['log-dir'] ? { logDir: values['log-dir'] } : {}),
    log: (line) => process.stdout.write(`${line}\n`),
    signal: abort.signal,
  });
  process.stdout.write(formatSummary(result));
  if (abort.signal.aborted) return 130;
  return result.violations.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`chaos failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
