import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import { DEFAULT_RETENTION, type RetentionPolicy, runScript, StreamPublisher, streamChannel, streamKeys } from '@app/backplane';
import { type Envelope, type EventDraft, foldEvents, initialState, type StreamName, type StreamStateByKind } from '@app/protocol';
import { RedisServerProcess } from '@app/runtime';
import { redisCpuUs } from './common';

/**
 * Redis CPU per published event, on one private redis-server, side by side in one run:
 *   - `spublish`: a bare SPUBLISH of the same message the scripts send (no seq, no history);
 *   - `old`: the publish path as it was before batching and the epoch fence: rtPublishV1, one
 *     EVALSHA per event, and its compaction through rtCatchUpV1 (both scripts' Lua is kept
 *     below, in this file only, as the baseline);
 *   - `new`: StreamPublisher as it is (rtPublishV2: batches per stream, replid-bound epoch).
 * Scenarios: one publisher awaiting each publish; four publishers (own connections) keeping
 * 64 publishes each in flight on one stream; the same on 16 streams. Two subscriber
 * connections (two "pods") SSUBSCRIBE every channel. Redis CPU = delta of INFO cpu
 * used_cpu_user + used_cpu_sys over the run, divided by the events. Rounds rotate the order
 * of the variants; the table gives the median over rounds (and the range).
 *
 *   node -r ts-node/register/transpile-only -r tsconfig-paths/register bench/redis-cpu.ts
 *   BENCH_ROUNDS (5), BENCH_SEQ_EVENTS (3000), BENCH_CONC_EVENTS (20000)
 */

function intEnv(name: string, fallback: number): number {
  const value = Number(process.env[name]);
  return Number.isInteger(value) && value > 0 ? value : fallback;
}

const ROUNDS = intEnv('BENCH_ROUNDS', 5);
const SEQ_EVENTS = intEnv('BENCH_SEQ_EVENTS', 3_000);
const CONC_EVENTS = intEnv('BENCH_CONC_EVENTS', 20_000);
const PUBLISHERS = 4;
const IN_FLIGHT = 64;
const MANY_STREAMS = 16;
/** Default retention but 2,000 events kept, so a warm-up of a few thousand reaches steady trimming. */
const RETENTION: RetentionPolicy = { ...DEFAULT_RETENTION, maxEvents: 2_000 };
const CONTENT = 'x'.repeat(256);

/** The bench payload of bench/common.ts: a 256-byte string, two ids, a counter, a time. */
function draft(n: number): EventDraft {
  return { type: 'thinking', payload: { runId: 'bench-run', sessionId: 'bench-session', content: CONTENT, sentUs: Date.now() * 1000, n } };
}

/** The publish script before this change (rtPublishV1), verbatim: the baseline. */
const OLD_PUBLISH_LUA = `
local meta, history, checkpoint, lock, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local idemTtl = tonumber(ARGV[11])

if idemTtl > 0 then
  local prior = redis.call('GET', idem)
  if prior then
    local p = cjson.decode(prior)
    return { p.seq, p.epoch, p.id, p.ts, 0, 1 }
  end
end

local now = redis.call('TIME')
local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)

local epoch = redis.call('HGET', meta, 'epoch')
if not epoch then
  -- A stream without meta starts a new history; leftovers of a lost one must not mix in.
  epoch = ARGV[3]
  redis.call('DEL', history, checkpoint)
  redis.call('HSET', meta, 'epoch', epoch, 'seq', 0, 'createdAt', ts, 'checkpointSeq', 0)
end
local seq = redis.call('HINCRBY', meta, 'seq', 1)

local envelope = '{"v":1,"stream":' .. cjson.encode(ARGV[1]) ..
  ',"seq":' .. seq ..
  ',"epoch":' .. cjson.encode(epoch) ..
  ',"id":' .. cjson.encode(ARGV[4]) ..
  ',"type":' .. cjson.encode(ARGV[5]) ..
  ',"ts":' .. string.format('%d', ts) ..
  ',"payload":' .. ARGV[6] .. '}'
redis.call('XADD', history, seq .. '-0', 'i', ARGV[4], 't', string.format('%d', ts), 'e', envelope)

-- Retention never drops an event after the newest checkpoint: snapshots fold from there.
local checkpointSeq = tonumber(redis.call('HGET', meta, 'checkpointSeq') or '0')
local keepFrom = seq - tonumber(ARGV[7]) + 1
local maxAge = tonumber(ARGV[8])
-- Reading the oldest entry costs about a sixth of a publish: do it every Nth event only.
if maxAge > 0 and seq % tonumber(ARGV[13]) == 0 then
  local oldest = redis.call('XRANGE', history, '-', '+', 'COUNT', 1)
  if oldest[1] and tonumber(oldest[1][2][4]) < ts - maxAge then
    local batch = redis.call('XRANGE', history, '-', '+', 'COUNT', 128)
    for _, entry in ipairs(batch) do
      if tonumber(entry[2][4]) >= ts - maxAge then break end
      local entrySeq = tonumber(string.match(entry[1], '^(%d+)'))
      if entrySeq + 1 > keepFrom then keepFrom = entrySeq + 1 end
    end
  end
end
if keepFrom > checkpointSeq + 1 then keepFrom = checkpointSeq + 1 end
if keepFrom > 1 then
  redis.call('XTRIM', history, 'MINID', keepFrom .. '-0')
end

redis.call('SPUBLISH', ARGV[2], '{"kind":"event","envelope":' .. envelope .. '}')

local idleTtl = tonumber(ARGV[9])
if idleTtl > 0 then
  -- Refresh at an epoch's first event (it creates the history key) and then about once a
  -- minute, not on every event.
  if seq == 1 or redis.call('TTL', meta) < idleTtl - math.min(60, idleTtl / 2) then
    redis.call('EXPIRE', meta, idleTtl)
    redis.call('EXPIRE', history, idleTtl)
    redis.call('EXPIRE', checkpoint, idleTtl)
  end
elseif seq == 1 then
  -- A subscribe may have created meta with a provisional TTL; this stream lives on.
  redis.call('PERSIST', meta)
end

local due = 0
if seq - checkpointSeq >= tonumber(ARGV[10]) then
  if redis.call('SET', lock, '1', 'NX', 'PX', tonumber(ARGV[12])) then due = 1 end
end

if idemTtl > 0 then
  redis.call('SET', idem, cjson.encode({ seq = seq, epoch = epoch, id = ARGV[4], ts = ts }), 'EX', idemTtl)
end
return { seq, epoch, ARGV[4], ts, due, 0 }
`;

/** The catch-up script before this change (rtCatchUpV1), verbatim: the old compaction read through it. */
const OLD_CATCH_UP_LUA = `
local meta, history, checkpoint = KEYS[1], KEYS[2], KEYS[3]
local sinceSeq = tonumber(ARGV[2])

local epoch = redis.call('HGET', meta, 'epoch')
if not epoch then
  epoch = ARGV[1]
  local now = redis.call('TIME')
  redis.call('DEL', history, checkpoint)
  redis.call('HSET', meta, 'epoch', epoch, 'seq', 0, 'createdAt', tonumber(now[1]) * 1000, 'checkpointSeq', 0)
  local ttl = tonumber(ARGV[6])
  if ttl > 0 then redis.call('EXPIRE', meta, ttl) end
end
local head = tonumber(redis.call('HGET', meta, 'seq'))

local function envelopes(fromSeq, count)
  local out = {}
  local entries
  if count then
    entries = redis.call('XRANGE', history, fromSeq .. '-0', '+', 'COUNT', count)
  else
    entries = redis.call('XRANGE', history, fromSeq .. '-0', '+')
  end
  for _, entry in ipairs(entries) do
    out[#out + 1] = entry[2][6]
  end
  return out, entries
end

local function snapshot(reason)
  local cp = redis.call('GET', checkpoint) or ''
  local cpSeq = tonumber(redis.call('HGET', meta, 'checkpointSeq') or '0')
  local reply = { 'snapshot', reason, epoch, head, cp }
  local tail = envelopes(cpSeq + 1)
  for _, e in ipairs(tail) do reply[#reply + 1] = e end
  return reply
end

if sinceSeq < 0 then return snapshot('requested') end
if ARGV[3] ~= epoch then return snapshot('epoch') end
if sinceSeq > head then return snapshot('diverged') end

if sinceSeq > 0 and ARGV[4] ~= '' then
  local at = redis.call('XRANGE', history, sinceSeq .. '-0', sinceSeq .. '-0')
  if not at[1] then return snapshot('trimmed') end
  if at[1][2][2] ~= ARGV[4] then return snapshot('diverged') end
end

if sinceSeq == head then return { 'replay', '', epoch, head, '' } end
local maxReplay = tonumber(ARGV[5])
if head - sinceSeq > maxReplay then return snapshot('too_far') end

local replay, entries = envelopes(sinceSeq + 1, maxReplay)
if not entries[1] or entries[1][1] ~= (sinceSeq + 1) .. '-0' then return snapshot('trimmed') end
local reply = { 'replay', '', epoch, head, '' }
for _, e in ipairs(replay) do reply[#reply + 1] = e end
return reply
`;

/**
 * The old publisher: one EVALSHA of OLD_PUBLISH_LUA per event and, when it says a checkpoint
 * is due (it took the lock), the old compaction: a snapshot read through OLD_CATCH_UP_LUA,
 * folded, then written by write_checkpoint.
 */
class OldPublisher {
  private readonly compactions = new Set<Promise<unknown>>();
  private readonly commands: Record<string, (...args: Array<string | number>) => Promise<unknown>>;

  constructor(private readonly redis: Redis) {
    redis.defineCommand('benchOldPublishV1', { numberOfKeys: 5, lua: OLD_PUBLISH_LUA });
    redis.defineCommand('benchOldCatchUpV1', { numberOfKeys: 3, lua: OLD_CATCH_UP_LUA });
    this.commands = redis as unknown as Record<string, (...args: Array<string | number>) => Promise<unknown>>;
  }

  async publish(stream: StreamName, event: EventDraft): Promise<void> {
    const keys = streamKeys(stream);
    const id = randomUUID();
    const reply = (await this.commands.benchOldPublishV1.call(
      this.redis,
      keys.meta,
      keys.history,
      keys.checkpoint,
      keys.compactLock,
      `${keys.meta}:idem:-`,
      stream,
      streamChannel(stream),
      id,
      id,
      event.type,
      JSON.stringify(event.payload),
      RETENTION.maxEvents,
      RETENTION.maxAgeMs,
      RETENTION.idleTtlSeconds,
      RETENTION.checkpointEvery,
      0,
      30_000,
      16,
    )) as [number, string, string, number, number, number];
    if (reply[4] === 1) {
      const task = this.compact(stream).finally(() => this.compactions.delete(task));
      this.compactions.add(task);
    }
  }

  private async compact(stream: StreamName): Promise<void> {
    const keys = streamKeys(stream);
    const [, , epoch, head, checkpointJson, ...tail] = (await this.commands.benchOldCatchUpV1.call(
      this.redis,
      keys.meta,
      keys.history,
      keys.checkpoint,
      randomUUID(),
      -1,
      '',
      '',
      RETENTION.maxReplay,
      3600,
    )) as [string, string, string, number, string, ...string[]];
    const base = checkpointJson ? (JSON.parse(checkpointJson) as { state: StreamStateByKind['bot'] }).state : initialState('bot');
    const state = foldEvents(
      'bot',
      base,
      tail.map((raw) => JSON.parse(raw) as Envelope),
    );
    await runScript(
      this.redis,
      'rtWriteCheckpointV1',
      [keys.meta, keys.checkpoint, keys.compactLock],
      [epoch, Number(head), JSON.stringify({ seq: Number(head), epoch, state })],
    );
  }

  async drain(): Promise<void> {
    while (this.compactions.size > 0) await Promise.allSettled([...this.compactions]);
  }
}

interface Sender {
  publish(stream: StreamName, n: number): Promise<unknown>;
  drain(): Promise<void>;
}

type Variant = 'spublish' | 'old' | 'new';
const VARIANTS: Variant[] = ['spublish', 'old', 'new'];

function sender(variant: Variant, redis: Redis): Sender {
  if (variant === 'new') {
    const publisher = new StreamPublisher(redis, RETENTION, (error) => console.error('compaction failed', error));
    return { publish: (stream, n) => publisher.publish(stream, draft(n)), drain: () => publisher.drain() };
  }
  if (variant === 'old') {
    const publisher = new OldPublisher(redis);
    return { publish: (stream, n) => publisher.publish(stream, draft(n)), drain: () => publisher.drain() };
  }
  // The message the scripts send for this event (same bytes), with a made-up seq and epoch.
  return {
    publish: (stream, n) => {
      const event = draft(n);
      const envelope = `{"v":1,"stream":${JSON.stringify(stream)},"seq":${n + 1},"epoch":"${randomUUID()}","ts":${Date.now()},"id":"${randomUUID()}","type":"${event.type}","payload":${JSON.stringify(event.payload)}}`;
      return redis.spublish(streamChannel(stream), `{"kind":"event","envelope":${envelope}}`);
    },
    drain: async () => undefined,
  };
}

interface Scenario {
  key: string;
  label: string;
  publishers: number;
  /** Publishes each publisher keeps in flight (1: awaits each one). */
  inFlight: number;
  streams: number;
  events: number;
}

const SCENARIOS: Scenario[] = [
  { key: 'seq', label: '1 publisher, sequential (awaits each publish)', publishers: 1, inFlight: 1, streams: 1, events: SEQ_EVENTS },
  {
    key: 'conc',
    label: `${PUBLISHERS} publishers × ${IN_FLIGHT} in flight, 1 stream`,
    publishers: PUBLISHERS,
    inFlight: IN_FLIGHT,
    streams: 1,
    events: CONC_EVENTS,
  },
  {
    key: 'many',
    label: `${PUBLISHERS} publishers × ${IN_FLIGHT} in flight, ${MANY_STREAMS} streams`,
    publishers: PUBLISHERS,
    inFlight: IN_FLIGHT,
    streams: MANY_STREAMS,
    events: CONC_EVENTS,
  },
];

async function connect(url: string): Promise<Redis> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 3 });
  await redis.connect();
  return redis;
}

async function scriptCalls(redis: Redis): Promise<number> {
  const info = await redis.info('commandstats');
  return [...info.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
}

interface Sample {
  cpuUsPerEvent: number;
  eventsPerSecond: number;
  callsPerEvent: number;
}

/** Publishes `count` events through `senders`, as the scenario says; resolves when all are taken. */
async function drive(senders: Sender[], scenario: Scenario, streams: StreamName[], count: number): Promise<void> {
  const perPublisher = Math.ceil(count / senders.length);
  await Promise.all(
    senders.map(async (s, p) => {
      for (let sent = 0; sent < perPublisher; ) {
        const chunk: Promise<unknown>[] = [];
        for (let i = 0; i < scenario.inFlight && sent < perPublisher; i++, sent++) chunk.push(s.publish(streams[(p + sent) % streams.length], sent));
        await Promise.all(chunk);
      }
      await s.drain();
    }),
  );
}

async function main(): Promise<void> {
  const server = await RedisServerProcess.start({ persistent: false });
  const stop = () => void server.dispose();
  process.on('exit', stop);
  try {
    const admin = await connect(server.url);
    const pods = [await connect(server.url), await connect(server.url)];
    let received = 0;
    for (const pod of pods) pod.on('smessage', () => received++);

    // The cost of the epoch fence alone: reading master_replid in a script.
    await admin.config('RESETSTAT');
    const loops = 100_000;
    await admin.eval(
      `for i = 1, ${loops} do local info = redis.call('INFO', 'replication'); local at = string.find(info, 'master_replid:', 1, true); local r = string.sub(info, at + 14, at + 53) end return 1`,
      0,
    );
    const fenceUs = Number(/usec=(\d+)/.exec((await admin.info('commandstats')).split('\n').find((l) => l.startsWith('cmdstat_eval:')) ?? '')?.[1]) / loops;

    const samples = new Map<string, Sample[]>();
    const streamsOf = (scenario: Scenario, variant: Variant) =>
      Array.from({ length: scenario.streams }, (_, i) => `bot:cpu-${scenario.key}-${variant}-${i}` as StreamName);
    for (const scenario of SCENARIOS) {
      for (const variant of VARIANTS) {
        const streams = streamsOf(scenario, variant);
        for (const pod of pods) await pod.ssubscribe(...streams.map((s) => streamChannel(s)));
      }
    }
    const connections: Redis[] = [];
    const senders = new Map<Variant, Sender[]>();
    for (const variant of VARIANTS) {
      const list: Sender[] = [];
      for (let p = 0; p < PUBLISHERS; p++) {
        const redis = await connect(server.url);
        connections.push(redis);
        list.push(sender(variant, redis));
      }
      senders.set(variant, list);
    }

    // Warm-up: every stream past its retention (trimming in steady state) and checkpointed.
    const warm = RETENTION.maxEvents + 2 * RETENTION.checkpointEvery;
    for (const scenario of SCENARIOS) {
      for (const variant of VARIANTS) {
        const streams = streamsOf(scenario, variant);
        await drive(senders.get(variant) as Sender[], { ...scenario, publishers: PUBLISHERS, inFlight: IN_FLIGHT }, streams, warm * streams.length);
      }
    }
    console.log(`warmed up; fence (INFO replication + find) ${fenceUs.toFixed(2)} µs per script call`);

    for (let round = 0; round < ROUNDS; round++) {
      for (const scenario of SCENARIOS) {
        const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length]);
        for (const variant of order) {
          const streams = streamsOf(scenario, variant);
          const list = (senders.get(variant) as Sender[]).slice(0, scenario.publishers);
          const expected = received + Math.ceil(scenario.events / list.length) * list.length * pods.length;
          const calls0 = await scriptCalls(admin);
          const cpu0 = await redisCpuUs(admin);
          const t0 = process.hrtime.bigint();
          await drive(list, scenario, streams, scenario.events);
          const elapsedS = Number(process.hrtime.bigint() - t0) / 1e9;
          const deadline = Date.now() + 30_000;
          while (received < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
          if (received < expected) throw new Error(`${variant} ${scenario.key}: ${expected - received} messages missing`);
          const cpu1 = await redisCpuUs(admin);
          const calls1 = await scriptCalls(admin);
          const events = Math.ceil(scenario.events / list.length) * list.length;
          const sample = { cpuUsPerEvent: (cpu1 - cpu0) / events, eventsPerSecond: events / elapsedS, callsPerEvent: (calls1 - calls0) / events };
          const key = `${scenario.key}/${variant}`;
          samples.set(key, [...(samples.get(key) ?? []), sample]);
          console.log(
            `round ${round + 1} ${key.padEnd(14)} ${sample.cpuUsPerEvent.toFixed(2)} µs/event  ${Math.round(sample.eventsPerSecond)} events/s  ${sample.callsPerEvent.toFixed(3)} calls/event`,
          );
        }
      }
    }

    const report = render(samples, fenceUs);
    console.log(`\n${report}`);
    const dir = join(__dirname, 'results');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `redis-cpu-${new Date().toISOString().slice(0, 10)}.md`);
    writeFileSync(file, report);
    console.log(`written to ${file}`);
    await Promise.all([admin, ...pods, ...connections].map((c) => c.quit().catch(() => undefined)));
  } finally {
    await server.dispose();
  }
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const fmt = (value: number, digits = 2) => value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

function render(samples: Map<string, Sample[]>, fenceUs: number): string {
  const cell = (key: string, pick: (s: Sample) => number, digits = 2) => {
    const values = (samples.get(key) ?? []).map(pick);
    return `${fmt(median(values), digits)} (${fmt(Math.min(...values), digits)}–${fmt(Math.max(...values), digits)})`;
  };
  const med = (key: string, pick: (s: Sample) => number) => median((samples.get(key) ?? []).map(pick));
  const cpu = (s: Sample) => s.cpuUsPerEvent;
  const lines: string[] = [];
  lines.push(`# Redis CPU per published event — ${new Date().toISOString().slice(0, 10)}`, '');
  lines.push('Produced by `bench/redis-cpu.ts` (see its header for the method).', '');
  lines.push(
    `- Machine: ${cpus().length} cores (${cpus()[0]?.model.trim()}), shared with other jobs; load average at the end ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' / ')}.`,
    `- One private redis-server ${process.env.REDIS_VERSION ?? '7.0'} (no persistence), two subscriber connections SSUBSCRIBEd to every channel (two pods), publishers in one Node ${process.version} process (ioredis).`,
    `- Payload: the bench event of bench/common.ts (256-byte string, two ids, a counter, a time), type \`thinking\`; retention ${RETENTION.maxEvents.toLocaleString('en-US')} events (every stream warmed past it first, so trimming runs), age limit 24 h (checked when the seq passes a multiple of 16), checkpoint every ${RETENTION.checkpointEvery}, idle TTL 7 days. Checkpoint folds count in the script variants: the old one reads through the old catch-up script, the new one with MULTI + XRANGE.`,
    `- ${ROUNDS} rounds; each round runs every scenario with the variants in rotating order. Cells: median µs of Redis CPU (INFO cpu, user + sys) per event, (min–max over rounds).`,
    '',
    '| scenario | bare SPUBLISH | old script | new StreamPublisher | new / old | new / SPUBLISH | old / SPUBLISH | script calls per event, new (compactions included) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const scenario of SCENARIOS) {
    const [b, o, n] = VARIANTS.map((v) => med(`${scenario.key}/${v}`, cpu));
    lines.push(
      `| ${scenario.label} (${scenario.events.toLocaleString('en-US')} events) | ${cell(`${scenario.key}/spublish`, cpu)} | ${cell(`${scenario.key}/old`, cpu)} | ${cell(`${scenario.key}/new`, cpu)} | ${fmt(n / o)} | ${fmt(n / b)} | ${fmt(o / b)} | ${fmt(
        med(`${scenario.key}/new`, (s) => s.callsPerEvent),
        3,
      )} |`,
    );
  }
  lines.push('', 'Events per second taken (publisher-bound here: the Node process shares the 2 cores with Redis), median:', '');
  lines.push('| scenario | bare SPUBLISH | old script | new StreamPublisher |', '|---|---:|---:|---:|');
  for (const scenario of SCENARIOS) {
    lines.push(
      `| ${scenario.label} | ${VARIANTS.map((v) =>
        fmt(
          med(`${scenario.key}/${v}`, (s) => s.eventsPerSecond),
          0,
        ),
      ).join(' | ')} |`,
    );
  }
  lines.push(
    '',
    `The epoch fence (reading \`master_replid\` from \`INFO replication\` inside the script) costs ${fmt(fenceUs)} µs per script call here, measured alone (100,000 reads in one script): once per batch, so ${fmt(fenceUs)} µs per event when publishes go one by one and a fraction of that when they batch.`,
    '',
  );
  return lines.join('\n');
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
