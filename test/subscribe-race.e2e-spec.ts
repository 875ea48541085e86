import { DEFAULT_RETENTION, type PublishedEvent, type RetentionPolicy, streamKeys } from '@app/backplane';
import { type BotEvent, type BotState, foldEvents, initialState } from '@app/protocol';
import { waitFor } from '@app/runtime';
import { connectSocket, range, seqsOf, type TestSocket } from './support/sockets';
import { startSystem, type TestSystem } from './support/system';
import { signToken } from './support/tokens';

/**
 * The subscribe race (PROTOCOL.md §5): sockets join a stream while four publishers storm
 * it and retention trims its early events. Each must get a snapshot at S equal to the fold
 * of events 1..S, then exactly S+1, S+2, … — no event twice, none lost.
 */
const retention: RetentionPolicy = { ...DEFAULT_RETENTION, maxEvents: 40, checkpointEvery: 15, maxReplay: 100 };
const env = {
  HISTORY_MAX_EVENTS: String(retention.maxEvents),
  CHECKPOINT_EVERY: String(retention.checkpointEvery),
  REPLAY_MAX_EVENTS: String(retention.maxReplay),
  COMMANDS_PER_SECOND: '1000',
};

let system: TestSystem;
const sockets: TestSocket[] = [];
beforeAll(async () => {
  system = await startSystem({ gateways: 2, workers: 0, env });
});
afterAll(async () => {
  sockets.forEach((s) => s.close());
  await system?.stop();
});

function draft(publisher: number, i: number): BotEvent {
  const runId = `r${publisher}`;
  const sessionId = `s${i % 7}`;
  switch (i % 5) {
    case 0:
      return { type: 'run_started', payload: { sessionId, runId, model: 'echo' } };
    case 1:
    case 2:
      return { type: 'message', payload: { sessionId, runId, messageId: `${runId}-m`, role: 'assistant', content: `${i},`, delta: true } };
    case 3:
      return { type: 'session_created', payload: { sessionId: `p${publisher}-${i}`, title: `t${i}` } };
    default:
      return { type: 'thinking', payload: { sessionId, runId, content: `.${i}` } };
  }
}

interface Subscriber {
  socket: TestSocket;
  seq: number;
  snapshot?: BotState;
  replayed: number;
  sinceSeq?: number;
}

it('gives every late joiner a snapshot equal to the fold of 1..S, then exactly S+1.., under a publish storm with trimming', async () => {
  const stream = 'bot:race-1';
  const log = new Map<number, { draft: BotEvent; published: PublishedEvent }>();
  const perPublisher = 400;
  const publishers = [0, 1, 2, 3].map(() => system.publisher(retention));
  let published = 0;

  const storm = Promise.all(
    publishers.map(async (publisher, p) => {
      for (const i of range(1, perPublisher)) {
        const d = draft(p, i);
        const result = await publisher.publish(stream, d);
        log.set(result.seq, { draft: d, published: result });
        published++;
      }
    }),
  );

  // Join while the storm runs: snapshot subscribers on both pods, and replays from a
  // position an earlier subscriber reached.
  const subscribers: Subscriber[] = [];
  const token = await signToken();
  for (let n = 0; n < 24 && published < perPublisher * 4 * 0.9; n++) {
    await waitFor(() => published >= n * 40, { message: `${n * 40} events published` });
    const socket = await connectSocket(system.gateways[n % 2].url, token);
    sockets.push(socket);
    const earlier = subscribers.find((s) => s.socket.events.length > 0 && n % 3 === 2);
    const resumeFrom = earlier?.socket.events.at(-1);
    const payload = resumeFrom ? { stream, sinceSeq: resumeFrom.seq, epoch: resumeFrom.epoch, lastId: resumeFrom.id } : { stream };
    const ack = await socket.command<{ seq: number; snapshot?: BotState; replayed: number }>('subscribe', payload);
    if (!ack.ok) throw new Error(JSON.stringify(ack.error));
    subscribers.push({ socket, seq: ack.result.seq, snapshot: ack.result.snapshot, replayed: ack.result.replayed, sinceSeq: resumeFrom?.seq });
  }
  await storm;
  const total = perPublisher * 4;
  expect(log.size).toBe(total);

  await waitFor(() => subscribers.every((s) => s.socket.events.at(-1)?.seq === total), {
    message: 'every subscriber reached the last event',
    timeoutMs: 20_000,
  });

  const snapshots = subscribers.filter((s) => s.snapshot);
  const replays = subscribers.filter((s) => !s.snapshot);
  expect(snapshots.length).toBeGreaterThan(10);
  expect(replays.length).toBeGreaterThan(2);
  expect(new Set(snapshots.map((s) => s.seq)).size).toBeGreaterThan(5);

  const foldUpTo = (seq: number) =>
    foldEvents(
      'bot',
      initialState('bot'),
      range(1, seq).map((n) => ({ ...(log.get(n) as { draft: BotEvent }).draft, ts: (log.get(n) as { published: PublishedEvent }).published.ts })),
    );

  for (const s of snapshots) {
    expect(s.snapshot).toEqual(foldUpTo(s.seq));
    expect(seqsOf(s.socket.events, stream)).toEqual(range(s.seq + 1, total));
  }
  for (const s of replays) {
    // A replay starts right after the client's position: replayed events, then live ones.
    expect(seqsOf(s.socket.events, stream)).toEqual(range((s.sinceSeq as number) + 1, total));
    expect(s.replayed).toBe(s.seq - (s.sinceSeq as number));
  }
  // Every delivered envelope is the published one.
  for (const s of subscribers) {
    for (const event of s.socket.events) expect(event.id).toBe(log.get(event.seq)?.published.id);
  }

  // Retention really trimmed the early events while this ran.
  const [first] = (await system.client.xrange(streamKeys(stream).history, '-', '+', 'COUNT', 1)) as Array<[string, string[]]>;
  expect(Number(first[0].split('-')[0])).toBeGreaterThan(total - retention.maxEvents - retention.checkpointEvery * 2);
  // And a late joiner now still gets the whole state.
  const late = await connectSocket(system.gateways[1].url, token);
  sockets.push(late);
  const ack = await late.command<{ seq: number; snapshot: BotState }>('subscribe', { stream });
  expect(ack).toMatchObject({ ok: true, result: { seq: total } });
  if (ack.ok) expect(ack.result.snapshot).toEqual(foldUpTo(total));
});
