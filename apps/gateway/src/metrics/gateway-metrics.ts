import { Injectable } from '@nestjs/common';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** The gateway's Prometheus instruments, in one registry served at `/metrics`. */
@Injectable()
export class GatewayMetrics {
  readonly registry = new Registry();

  readonly sockets = new Gauge({ name: 'rtgw_sockets', help: 'Connected sockets on this pod', registers: [this.registry] });
  readonly subscriptions = new Gauge({
    name: 'rtgw_subscriptions',
    help: 'Stream subscriptions held by sockets on this pod',
    registers: [this.registry],
  });
  readonly feeds = new Gauge({
    name: 'rtgw_backplane_feeds',
    help: 'Streams this pod is subscribed to on the backplane',
    registers: [this.registry],
  });
  readonly commands = new Counter({
    name: 'rtgw_commands_total',
    help: 'Commands answered, by type and outcome (ok or the error code)',
    labelNames: ['type', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly eventsPublished = new Counter({
    name: 'rtgw_events_published_total',
    help: 'Events published through this pod (HTTP API, session events)',
    registers: [this.registry],
  });
  readonly eventsReceived = new Counter({
    name: 'rtgw_backplane_events_received_total',
    help: 'Stream events received from the backplane',
    registers: [this.registry],
  });
  readonly eventsDelivered = new Counter({
    name: 'rtgw_events_delivered_total',
    help: 'Stream events written to sockets (one per socket per event, replays included)',
    labelNames: ['path'] as const,
    registers: [this.registry],
  });
  readonly deliveryLatency = new Histogram({
    name: 'rtgw_publish_to_deliver_seconds',
    help: 'From the publish (envelope ts, Redis clock) to the fan-out on this pod',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly feedStalls = new Counter({
    name: 'rtgw_backplane_feed_stalls_total',
    help: 'Quiet feeds the watchdog found behind their stream (their channel was subscribed again)',
    registers: [this.registry],
  });
  readonly pathRepairs = new Counter({
    name: 'rtgw_backplane_path_repairs_total',
    help: "Repairs of the pod's subscriber connection: resubscribe (its own probe did not come back), replace (a new connection: the probe still lost, or a feed that could not be subscribed again)",
    labelNames: ['action'] as const,
    registers: [this.registry],
  });
  readonly gapsRepaired = new Counter({
    name: 'rtgw_backplane_gaps_total',
    help: 'Gaps in a stream feed, by whether history could fill them',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly invalidMessages = new Counter({
    name: 'rtgw_backplane_invalid_messages_total',
    help: 'Backplane messages dropped because they failed validation',
    registers: [this.registry],
  });
  readonly catchUps = new Counter({
    name: 'rtgw_subscribe_catchups_total',
    help: 'Subscribe catch-ups, by mode (replay or snapshot) and reason',
    labelNames: ['mode', 'reason'] as const,
    registers: [this.registry],
  });
  readonly redisErrors = new Counter({
    name: 'rtgw_redis_errors_total',
    help: 'Errors reported by Redis connections',
    labelNames: ['connection'] as const,
    registers: [this.registry],
  });
  readonly malformedFrames = new Counter({
    name: 'rtgw_malformed_frames_total',
    help: 'Socket.IO frames that could not be decoded',
    registers: [this.registry],
  });
  readonly plainConnections = new Gauge({
    name: 'rtgw_plain_connections',
    help: 'Connections on /ws and the compatibility endpoints (also counted in rtgw_sockets)',
    labelNames: ['endpoint'],
    registers: [this.registry],
  });
  readonly slowReaders = new Counter({
    name: 'rtgw_slow_readers_total',
    help: 'Connections cut off because their unsent bytes passed WS_MAX_BUFFERED_BYTES (a reader that stopped reading)',
    labelNames: ['transport'],
    registers: [this.registry],
  });
  readonly plainClosed = new Counter({
    name: 'rtgw_plain_closed_total',
    help: 'Plain-WebSocket connections closed by the server, by reason',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly httpReaders = new Gauge({
    name: 'rtgw_http_readers',
    help: 'HTTP reads waiting on this pod: long-polls, and SSE responses (also counted in rtgw_sockets)',
    labelNames: ['mode'],
    registers: [this.registry],
  });
  readonly httpReadersClosed = new Counter({
    name: 'rtgw_http_readers_closed_total',
    help: 'SSE reads ended, by reason (client: the client closed it; the others are the server)',
    labelNames: ['reason'],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'rtgw_' });
  }
}
