// examples/dag.ts — npm run -s example:dag (with a DEV_TOKEN whose scope covers dag:*)
import { RealtimeClient } from '@app/client';

async function main(): Promise<void> {
  const client = new RealtimeClient({ url: process.env.GATEWAY_URL ?? 'http://localhost:3000', token: process.env.DEV_TOKEN ?? '' });
  const { executionId } = await client.command('start_execution', { dagId: 'demo-research' });
  const dag = await client.subscribe(`dag:${executionId}`);
  let answered = false;
  const finished = new Promise<void>((resolve) =>
    dag.on('change', (s) => {
      console.log(s.status, s.nodes.map((n) => `${n.id}:${n.status}`).join(' '));
      // Any dashboard may answer the gate; a second answer is CONFLICT.
      if (s.pendingGates.review && !answered) {
        answered = true;
        void client.command('human_decision', { executionId, nodeId: 'review', decision: 'approve' });
      }
      if (s.status === 'completed' || s.status === 'failed' || s.status === 'cancelled') resolve();
    }),
  );
  await finished;
  console.log(`execution ${executionId} ${dag.state.status}, cost ${dag.state.cost?.spent ?? 0}`);
  client.close();
}

void main();
