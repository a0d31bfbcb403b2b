import { afterEach, test } from '@jest/globals';
import { readdirSync } from 'node:fs';
import { startHarness, FIXTURES, type Harness } from '../support/e2e.ts';

let h: Harness | undefined;
afterEach(async () => { await h?.stop(); h = undefined; });
const traces = readdirSync(FIXTURES).filter((f) => f.endsWith('.jsonl') && f !== 'actions-idle.jsonl').map((f) => f.replace('.jsonl', ''));
test.each(traces)('%s', async (name) => {
  h = await startHarness({ trace: name });
  await h.settle();
  process.stdout.write(`'${name}': [\n${h.compact().map((l) => `  '${l}',`).join('\n')}\n],\n`);
});
