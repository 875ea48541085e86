// examples/quickstart.ts — npm run -s example:quickstart (with DEV_TOKEN exported as above)
import { RealtimeClient } from '@app/client';

async function main(): Promise<void> {
  const client = new RealtimeClient({ url: process.env.GATEWAY_URL ?? 'http://localhost:3000', token: process.env.DEV_TOKEN ?? '' });
  const store = await client.subscribe('bot:demo'); // a snapshot, then live deltas
  store.on('change', (state) => console.log(`runs in progress: ${Object.keys(state.activeRuns).length}`));
  // The demo model runs a risky tool only once someone approves it (docs/bots.md).
  const asked = new Promise<string>((resolve) => store.on('change', (state) => Object.keys(state.pendingApprovals).forEach(resolve)));
  const { runId } = await client.command('chat', { botId: 'demo', content: '/tool delete_file {"path":"/tmp/x"}' });
  await client.command('approval', { approvalId: await asked, approved: true });
  await new Promise<void>((resolve) => client.on('done', (event) => event.payload.runId === runId && resolve()));
  console.log(`run ${runId} done`);
  client.close();
}

void main();
