import { Inject, Injectable } from '@nestjs/common';
import { type StreamHead, StreamHistory } from '@app/backplane';
import {
  encodeOffset,
  ErrorCode,
  OFFSET_START,
  OffsetGoneError,
  ProtocolError,
  type ReadFrom,
  type StreamName,
  type StreamPosition,
  type StreamSnapshotResponse,
} from '@app/protocol';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';
import { SubscriptionService } from '../streams/subscription.service';
import { pageOf, type ReadPage } from './read-page';

/**
 * The history side of HTTP reads (PROTOCOL.md §12): pages of events after an offset, the
 * tail, and snapshots. An offset is valid while the stream is on its epoch and history still
 * holds the event after it; otherwise the read answers 410 with where the stream stands
 * (OffsetGoneError), and the client takes a snapshot. `-1` is the first event: a history
 * trimmed past it is gone as well, so a reader never gets a stream with its start missing.
 */
@Injectable()
export class StreamReads {
  /** A page holds at most as many events as a resubscribe may replay (REPLAY_MAX_EVENTS). */
  private readonly pageEvents: number;

  constructor(
    private readonly history: StreamHistory,
    private readonly subscriptions: SubscriptionService,
    @Inject(GATEWAY_CONFIG) config: GatewayConfig,
  ) {
    this.pageEvents = Math.max(1, config.retention.maxReplay);
  }

  /** The events after `from`, one page of them; OffsetGoneError when the offset's history is gone. */
  async page(stream: StreamName, from: ReadFrom): Promise<ReadPage> {
    if (from.kind === 'now') return pageOf(await this.tail(stream), [], 0);
    const after = from.kind === 'after' ? from.position.seq : 0;
    let { head, events } = await this.history.page(stream, after, this.pageEvents);
    if (!head) {
      await this.open(stream);
      ({ head, events } = await this.history.page(stream, after, this.pageEvents));
      if (!head) throw new ProtocolError(ErrorCode.UNAVAILABLE, `${stream} has no history yet; retry`, undefined, 100);
    }
    const current = { epoch: head.epoch, seq: head.seq };
    const gone = () => new OffsetGoneError(from.kind === 'after' ? encodeOffset(from.position) : OFFSET_START, current);
    if (from.kind === 'after' && (from.position.epoch !== head.epoch || from.position.seq > head.seq)) throw gone();
    // Retention trimmed the event right after the offset (MULTI: the events are the head's).
    if (after < head.seq && events[0]?.seq !== after + 1) throw gone();
    return pageOf({ epoch: head.epoch, seq: after }, events, head.seq);
  }

  /** Where the stream stands now: what `offset=now` starts from. */
  async tail(stream: StreamName): Promise<StreamPosition> {
    const head = (await this.history.head(stream)) ?? (await this.open(stream));
    return { epoch: head.epoch, seq: head.seq };
  }

  /** The snapshot a subscribe gets (PROTOCOL.md §5), and the offset of its position. */
  async snapshot(stream: StreamName): Promise<StreamSnapshotResponse> {
    const catchUp = await this.subscriptions.readSnapshot(stream);
    if (catchUp.mode !== 'snapshot') throw new ProtocolError(ErrorCode.INTERNAL, `the snapshot read of ${stream} replayed instead`);
    const { epoch, seq, state } = catchUp;
    return { stream, epoch, seq, snapshot: state, offset: encodeOffset({ epoch, seq }) };
  }

  /**
   * A stream never published to (or expired) gets its epoch now, as a subscribe gives it one
   * (the catch-up read creates it, provisionally): its first publish keeps it, so the offset
   * a reader takes now stays valid.
   */
  private async open(stream: StreamName): Promise<StreamHead> {
    const { epoch, seq } = await this.history.catchUp(stream);
    return { epoch, seq, base: 0 };
  }
}
