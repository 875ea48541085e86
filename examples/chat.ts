/**
 * Chat with a bot and watch its run, as a dashboard does (the README's first example):
 *
 *   npm start                                   # in another terminal
 *   export DEV_TOKEN=$(npm run -s token -- --sub alice --scope bot:demo --ttl 1h)
 *   npm run -s example:chat -- "hello there"
 *
 * GATEWAY_URL (default http://localhost:3000), DEV_TOKEN and BOT_ID (default demo) come from
 * the environment. It subscribes to the bot's stream (a snapshot, then live deltas), sends a
 * chat, prints the reply as it streams, and exits when the run's `done` arrives.
 */
import { RealtimeClient } from '@app/client';

type RunPayload = { runId?: string; role?: string; content?: string; status?: string };

async function main(): Promise<void> {
  const token = process.env.DEV_TOKEN;
  if (!token) throw new Error('set DEV_TOKEN: export DEV_TOKEN=$(npm run -s token -- --sub alice --scope bot:demo)');
  const botId = process.env.BOT_ID ?? 'demo';
  const content = process.argv.slice(2).join(' ') || 'hello';
  const client = new RealtimeClient({ url: process.env.GATEWAY_URL ?? 'http://localhost:3000', token });
  try {
    const store = await client.subscribe(`bot:${botId}`); // snapshot, then live deltas
    console.log(`bot:${botId}: ${Object.keys(store.state.activeRuns).length} runs in progress`);

    // Events of the run may come before the chat's ack names it: keep them until then.
    let runId: string | null = null;
    const early: Array<{ type: string; payload: RunPayload }> = [];
    let finish: (status: string) => void = () => undefined;
    const done = new Promise<string>((resolve) => (finish = resolve));
    const show = (type: string, payload: RunPayload) => {
      if (type === 'message' && payload.role === 'assistant') process.stdout.write(payload.content ?? '');
      if (type === 'done') finish(payload.status ?? 'unknown');
    };
    client.on('event', (event) => {
      const payload = event.payload as RunPayload;
      if (runId === null) early.push({ type: event.type, payload });
      else if (payload.runId === runId) show(event.type, payload);
    });
    ({ runId } = await client.command('chat', { botId, content }));
    for (const event of early) if (event.payload.runId === runId) show(event.type, event.payload);
    const status = await done;
    console.log(`\nrun ${runId} ${status}`);
  } finally {
    client.close();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
});
