import { randomUUID } from 'node:crypto';
import { type RedisClient, type RetentionPolicy, StreamHistory, streamChannel, streamKeys } from '@app/backplane';
import type { EventDraft, StreamName } from '@app/protocol';

/**
 * The publish path before script calls were shared across streams, kept for
 * bench/redis-cpu.ts only, as its baseline: rtPublishV2 (one call carries the events of one
 * stream; its Lua verbatim below) and the publisher around it (one queue per stream, at most
 * one call in flight per stream, flushed on a microtask), compaction included. Idempotency
 * keys are left out: the bench publishes none.
 */
const PUBLISH_V2_LUA = `
local meta, history, checkpoint = KEYS[1], KEYS[2], KEYS[3]
local n = tonumber(ARGV[8])

local now = redis.call('TIME')
local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local tsText = string.format('%d', ts)
local info = redis.call('INFO', 'replication')
local at = string.find(info, 'master_replid:', 1, true)
local replid = string.sub(info, at + 14, at + 53)

local m = redis.call('HMGET', meta, 'epoch', 'seq', 'checkpointSeq', 'replid', 'touched')
local epoch, seq, checkpointSeq, touched = m[1], tonumber(m[2]), tonumber(m[3] or '0'), m[5]
if not epoch then
  -- A stream without meta starts a new history; leftovers of a lost one must not mix in.
  epoch, seq, checkpointSeq, touched = ARGV[3], 0, 0, false
  redis.call('DEL', history, checkpoint)
  redis.call('HSET', meta, 'epoch', epoch, 'seq', 0, 'createdAt', ts, 'checkpointSeq', 0, 'replid', replid, 'base', 0)
elseif m[4] ~= replid then
  if m[4] then
    -- Last written under another master or lifetime: writes after this head may be lost
    -- and their seqs must not be reused under the epoch that carried them.
    epoch = ARGV[3]
    redis.call('HSET', meta, 'epoch', epoch, 'replid', replid, 'base', seq)
  else
    redis.call('HSET', meta, 'replid', replid)
  end
end

-- Idempotency keys are read before anything is written, and the seqs claimed in meta
-- first, so no failure half-way through could let a later call reuse one. \`known[key]\`:
-- the first answer (a string), or false when this batch publishes the key's event.
local keyOf, ttlOf, known = {}, {}, {}
local fresh = n
for j = 0, tonumber(ARGV[9]) - 1 do
  local i = tonumber(ARGV[10 + 2 * n + 2 * j])
  local key = KEYS[4 + j]
  keyOf[i], ttlOf[i] = key, tonumber(ARGV[11 + 2 * n + 2 * j])
  if known[key] == nil then
    known[key] = redis.call('GET', key) or false
    if known[key] then fresh = fresh - 1 end
  else
    fresh = fresh - 1
  end
end
local idleTtl = tonumber(ARGV[6])
-- The idle TTL is refreshed at a stream's first publish (a subscribe may have created meta
-- with a provisional TTL, and the first XADD creates the history key) and then about once
-- a minute, not on every event: \`touched\` is when it last was.
local refresh = fresh > 0 and (not touched or (idleTtl > 0 and ts - tonumber(touched) >= 1000 * math.min(60, idleTtl / 2)))
if refresh then
  redis.call('HSET', meta, 'seq', seq + fresh, 'touched', ts)
elseif fresh > 0 then
  redis.call('HSET', meta, 'seq', seq + fresh)
end
local first = seq

local head, channel = ARGV[1], ARGV[2]
local mid = ',"epoch":' .. cjson.encode(epoch) .. ',"ts":' .. tsText .. ','
local reply = { epoch, ts, checkpointSeq }
for i = 0, n - 1 do
  local key = keyOf[i]
  if key and known[key] then
    reply[4 + i] = known[key]
  else
    local id = ARGV[10 + 2 * i]
    seq = seq + 1
    local envelope = head .. seq .. mid .. ARGV[11 + 2 * i]
    redis.call('XADD', history, seq .. '-0', 'i', id, 't', tsText, 'e', envelope)
    redis.call('SPUBLISH', channel, '{"kind":"event","envelope":' .. envelope .. '}')
    if key then
      known[key] = '{"seq":' .. seq .. ',"epoch":' .. cjson.encode(epoch) .. ',"id":' .. cjson.encode(id) .. ',"ts":' .. tsText .. '}'
      redis.call('SET', key, known[key], 'EX', ttlOf[i])
    end
    reply[4 + i] = seq
  end
end
if fresh == 0 then return reply end

-- Retention never drops an event after the newest checkpoint: snapshots fold from there.
-- Count trims are approximate (\`MINID ~\`): only whole stream nodes go (at most 100 events,
-- stream-node-max-entries), so up to a node more than the limit stays, and a trim costs next
-- to nothing when there is no whole node to drop. Age trims (rare) are exact.
local keepFrom = seq - tonumber(ARGV[4]) + 1
local exact = '~'
local maxAge = tonumber(ARGV[5])
local ageEvery = tonumber(ARGV[7])
-- Reading the oldest entries costs about a sixth of a publish: only when the seq passes a
-- multiple of ageEvery.
if maxAge > 0 and math.floor(seq / ageEvery) > math.floor(first / ageEvery) then
  local oldest = redis.call('XRANGE', history, '-', '+', 'COUNT', 1)
  if oldest[1] and tonumber(oldest[1][2][4]) < ts - maxAge then
    local batch = redis.call('XRANGE', history, '-', '+', 'COUNT', 128)
    for _, entry in ipairs(batch) do
      if tonumber(entry[2][4]) >= ts - maxAge then break end
      local entrySeq = tonumber(string.match(entry[1], '^(%d+)'))
      if entrySeq + 1 > keepFrom then
        keepFrom = entrySeq + 1
        exact = '='
      end
    end
  end
end
if keepFrom > checkpointSeq + 1 then keepFrom = checkpointSeq + 1 end
if keepFrom > 1 then
  redis.call('XTRIM', history, 'MINID', exact, keepFrom .. '-0')
end

if refresh then
  if idleTtl > 0 then
    redis.call('EXPIRE', meta, idleTtl)
    redis.call('EXPIRE', history, idleTtl)
    redis.call('EXPIRE', checkpoint, idleTtl)
  else
    -- A subscribe may have created meta with a provisional TTL; this stream lives on.
    redis.call('PERSIST', meta)
  end
end
return reply
`;

const MAX_BATCH_EVENTS = 128;
const MAX_BATCH_BYTES = 512 * 1024;
const COMPACTION_LOCK_MS = 30_000;

interface Queued {
  id: string;
  tail: string;
  resolve(): void;
  reject(error: unknown): void;
}

export class PerStreamPublisher {
  private readonly history: StreamHistory;
  private readonly queues = new Map<StreamName, { queued: Queued[]; inFlight: boolean }>();
  private readonly compactions = new Set<Promise<unknown>>();
  private readonly compacting = new Set<StreamName>();
  private readonly command: (...args: Array<string | number>) => Promise<unknown>;

  constructor(
    private readonly redis: RedisClient,
    private readonly retention: RetentionPolicy,
  ) {
    this.history = new StreamHistory(redis, retention);
    redis.defineCommand('benchPublishV2', { lua: PUBLISH_V2_LUA });
    this.command = (redis as unknown as Record<string, (...args: Array<string | number>) => Promise<unknown>>).benchPublishV2.bind(redis);
  }

  publish(stream: StreamName, draft: EventDraft): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const id = randomUUID();
      const item = { id, tail: `"id":"${id}","type":${JSON.stringify(draft.type)},"payload":${JSON.stringify(draft.payload)}}`, resolve, reject };
      const queue = this.queues.get(stream);
      if (queue) {
        queue.queued.push(item);
        return;
      }
      this.queues.set(stream, { queued: [item], inFlight: false });
      queueMicrotask(() => this.flush(stream));
    });
  }

  async drain(): Promise<void> {
    while (this.compactions.size > 0) await Promise.allSettled([...this.compactions]);
  }

  private flush(stream: StreamName): void {
    const queue = this.queues.get(stream);
    if (!queue || queue.inFlight) return;
    const { queued } = queue;
    if (queued.length === 0) {
      this.queues.delete(stream);
      return;
    }
    let count = 1;
    let bytes = queued[0].tail.length;
    while (count < queued.length && count < MAX_BATCH_EVENTS && bytes + queued[count].tail.length <= MAX_BATCH_BYTES) {
      bytes += queued[count].tail.length;
      count++;
    }
    const batch = queued.splice(0, count);
    queue.inFlight = true;
    const keys = streamKeys(stream);
    this.command(
      3,
      keys.meta,
      keys.history,
      keys.checkpoint,
      `{"v":1,"stream":${JSON.stringify(stream)},"seq":`,
      streamChannel(stream),
      batch[0].id,
      this.retention.maxEvents,
      this.retention.maxAgeMs,
      this.retention.idleTtlSeconds,
      this.retention.trimEvery ?? 16,
      batch.length,
      0,
      ...batch.flatMap((item) => [item.id, item.tail]),
    )
      .then(
        (reply) => {
          const [, , checkpointSeq, ...answers] = reply as [string, number, number, ...number[]];
          batch.forEach((item) => item.resolve());
          this.maybeCompact(stream, Number(answers.at(-1)), Number(checkpointSeq));
        },
        (error: unknown) => batch.forEach((item) => item.reject(error)),
      )
      .finally(() => {
        queue.inFlight = false;
        this.flush(stream);
      });
  }

  private maybeCompact(stream: StreamName, seq: number, checkpointSeq: number): void {
    if (seq - checkpointSeq < this.retention.checkpointEvery || this.compacting.has(stream)) return;
    this.compacting.add(stream);
    const task = this.redis
      .set(streamKeys(stream).compactLock, '1', 'PX', COMPACTION_LOCK_MS, 'NX')
      .then((locked) => (locked === 'OK' ? this.history.compact(stream) : false))
      .catch((error: unknown) => console.error('compaction failed', error))
      .finally(() => {
        this.compacting.delete(stream);
        this.compactions.delete(task);
      });
    this.compactions.add(task);
  }
}
