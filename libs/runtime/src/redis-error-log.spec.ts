import { EventEmitter } from 'node:events';
import { errorKind, RedisErrorLog } from './redis-error-log';

class FakeConnection extends EventEmitter {
  status = 'ready';
}

function refused(): Error {
  return Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' });
}

function setup(windowMs = 1_000) {
  const lines: Array<{ level: string } & Record<string, unknown>> = [];
  const sink = {
    error: (f: Record<string, unknown>) => lines.push({ level: 'error', ...f }),
    warn: (f: Record<string, unknown>) => lines.push({ level: 'warn', ...f }),
  };
  const counted: string[] = [];
  const log = new RedisErrorLog(sink, { windowMs, onError: (source) => counted.push(source) });
  const own = { commands: new FakeConnection(), subscriber: new FakeConnection() };
  log.watchAvailability(own);
  return { lines, log, own, counted };
}

beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());

it('tells an outage in three lines however many connections fail how often', () => {
  const { lines, log, own, counted } = setup();
  const queue = new EventEmitter();
  log.watch('queue:q', queue);
  own.commands.status = 'reconnecting';
  own.subscriber.status = 'reconnecting';
  for (let i = 0; i < 50; i++) {
    log.report('commands', refused());
    log.report('subscriber', refused());
    queue.emit('error', refused());
  }
  jest.advanceTimersByTime(1_000);
  for (let i = 0; i < 10; i++) log.report('commands', refused());
  own.commands.status = 'ready';
  own.commands.emit('ready');
  expect(lines).toHaveLength(2);
  own.subscriber.status = 'ready';
  own.subscriber.emit('ready');

  expect(lines.map((l) => [l.level, l.msg])).toEqual([
    ['error', 'redis unavailable'],
    ['warn', 'redis errors repeated'],
    ['warn', 'redis back'],
  ]);
  expect(lines[0]).toMatchObject({ connection: 'commands', kind: 'ECONNREFUSED' });
  expect(lines[1].counted).toEqual(
    expect.arrayContaining([
      { connection: 'commands', kind: 'ECONNREFUSED', count: 49 },
      { connection: 'subscriber', kind: 'ECONNREFUSED', count: 50 },
      { connection: 'queue:q', kind: 'ECONNREFUSED', count: 50 },
    ]),
  );
  expect(lines[2]).toMatchObject({ errors: 160, counted: [{ connection: 'commands', kind: 'ECONNREFUSED', count: 10 }] });
  expect(counted).toHaveLength(160);
});

it('logs any other error once per connection and kind per window, then counts it', () => {
  const { lines, log } = setup();
  const noauth = () => new Error('NOAUTH Authentication required.');
  for (let i = 0; i < 5; i++) log.report('commands', noauth());
  log.report('subscriber', noauth());
  expect(lines.map((l) => [l.msg, l.connection, l.kind])).toEqual([
    ['redis connection error', 'commands', 'NOAUTH'],
    ['redis connection error', 'subscriber', 'NOAUTH'],
  ]);
  jest.advanceTimersByTime(1_000);
  expect(lines[2]).toMatchObject({ msg: 'redis errors repeated', counted: [{ connection: 'commands', kind: 'NOAUTH', count: 4 }] });
  jest.advanceTimersByTime(5_000);
  log.report('commands', noauth());
  expect(lines).toHaveLength(4);
  expect(lines[3]).toMatchObject({ msg: 'redis connection error', connection: 'commands' });
});

it('says nothing about connections closing on shutdown', () => {
  const { lines, log } = setup();
  log.close();
  log.report('queue:q', new Error('Connection is closed.'));
  expect(lines).toEqual([]);
});

it('names errors by code, Redis reply word or class', () => {
  expect(errorKind(refused())).toBe('ECONNREFUSED');
  expect(errorKind(new Error('READONLY You can not write against a read only replica.'))).toBe('READONLY');
  expect(errorKind(new TypeError('x is not a function'))).toBe('TypeError');
});
