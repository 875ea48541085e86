import { Producer, producerIds } from '@app/backplane';
import type { DagEvent, NodeStatus } from '@app/protocol';
import type { EventSink } from '../ops/event-sink';

type NodeState = Extract<DagEvent, { type: 'node_state' }>['payload'];

/**
 * The events one step of an execution publishes (its start, a node's attempt, a control
 * job), stamped by one producer: a step that runs again after its worker died replays the
 * same events in the same order, and those already out are not published twice. A step must
 * therefore publish deterministically — from what it recorded in Redis, never twice differently.
 */
export class StepEvents {
  private readonly producer: Producer;

  constructor(
    private readonly sink: EventSink,
    readonly executionId: string,
    step: string,
    epoch: number,
  ) {
    this.producer = new Producer(producerIds.dagStep(step), epoch);
  }

  async publish(event: DagEvent): Promise<void> {
    await this.sink.dag(this.executionId, event, { producer: this.producer.next() });
  }

  node(nodeId: string, status: NodeStatus, details: Omit<NodeState, 'nodeId' | 'status'> = {}): Promise<void> {
    return this.publish({ type: 'node_state', payload: { nodeId, status, ...details } });
  }
}
