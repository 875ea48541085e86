import { getQueueToken } from '@nestjs/bullmq';
import type { Provider } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { QUEUES } from '@app/backplane';
import { RedisErrorLog } from '@app/runtime';

/**
 * Every queue's errors go to the pod's Redis error log. The queues share the pod's `commands`
 * connection, so each of its failed reconnects reaches each queue too, and BullMQ prints an
 * error nobody listens to — stack and all — to stderr. Resolved when Nest builds the pod,
 * before anything waits for Redis.
 */
export const queueErrorLogging: Provider = {
  provide: 'QUEUE_ERROR_LOGGING',
  inject: [RedisErrorLog, ...Object.values(QUEUES).map((name) => getQueueToken(name))],
  useFactory: (errors: RedisErrorLog, ...queues: Queue[]) => {
    for (const queue of queues) errors.watch(`queue:${queue.name}`, queue);
    return queues.length;
  },
};
