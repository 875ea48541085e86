import { Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import { DomainStore } from '@app/backplane';
import type { DagDefinition } from '@app/protocol';

/**
 * Stored demo definitions, startable with `start_execution { dagId }` (README, "Watch a
 * DAG"). Every worker writes them at start; they are the same each time.
 */
export const DEMO_DAGS: Record<string, DagDefinition> = {
  'demo-diamond': {
    nodes: [
      { id: 'fetch', label: 'Fetch', config: { fn: 'echo', args: [3, 4], durationMs: 500 } },
      { id: 'left', label: 'Sum', config: { fn: 'sum', durationMs: 1500, costUsd: 0.01 } },
      { id: 'right', label: 'Describe', config: { fn: 'concat', durationMs: 1000, costUsd: 0.02 } },
      { id: 'join', label: 'Join', config: { fn: 'echo', durationMs: 500 } },
    ],
    edges: [
      { from: 'fetch', to: 'left' },
      { from: 'fetch', to: 'right' },
      { from: 'left', to: 'join' },
      { from: 'right', to: 'join' },
    ],
  },
  'demo-research': {
    nodes: [
      { id: 'topics', label: 'Pick topics', config: { fn: 'echo', args: ['redis', 'bullmq', 'sockets'], durationMs: 500 } },
      {
        id: 'research',
        kind: 'map',
        label: 'Research each',
        config: { fromNode: 'topics', template: { kind: 'llm', config: { prompt: 'Write two sentences about this topic.' } } },
      },
      { id: 'summary', kind: 'llm', label: 'Summarise', config: { prompt: 'Summarise the research in one paragraph.' } },
      { id: 'review', kind: 'human_gate', label: 'Review', config: { prompt: 'Publish the summary?' } },
      { id: 'stamp', kind: 'tool', label: 'Timestamp', config: { tool: 'clock', args: {} } },
    ],
    edges: [
      { from: 'topics', to: 'research' },
      { from: 'research', to: 'summary' },
      { from: 'summary', to: 'review' },
      { from: 'review', to: 'stamp' },
    ],
  },
};

@Injectable()
export class DemoDags implements OnApplicationBootstrap {
  constructor(private readonly store: DomainStore) {}

  async onApplicationBootstrap(): Promise<void> {
    await Promise.all(Object.entries(DEMO_DAGS).map(([dagId, definition]) => this.store.saveDagDefinition(dagId, definition)));
  }
}
