import { ExpirySchedule } from './expiry-schedule';

describe('ExpirySchedule', () => {
  beforeEach(() => jest.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => jest.useRealTimers());

  it('hands each item over once its expiry has passed, never before, with one timer', () => {
    const expired: string[] = [];
    const schedule = new ExpirySchedule<string>((item) => expired.push(item));
    schedule.add('late', 1_005_000);
    schedule.add('early', 1_002_000);
    schedule.add('early-too', 1_002_000);
    expect(jest.getTimerCount()).toBe(1);

    jest.advanceTimersByTime(1_999);
    expect(expired).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(expired).toEqual(['early', 'early-too']);
    jest.advanceTimersByTime(3_000);
    expect(expired).toEqual(['early', 'early-too', 'late']);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('rounds an expiry between seconds up, so an item is never early', () => {
    const expired: string[] = [];
    const schedule = new ExpirySchedule<string>((item) => expired.push(item));
    schedule.add('a', 1_001_200);
    jest.advanceTimersByTime(1_199);
    expect(expired).toEqual([]);
    jest.advanceTimersByTime(801);
    expect(expired).toEqual(['a']);
  });

  it('forgets deleted items and re-arms for an earlier one added later', () => {
    const expired: string[] = [];
    const schedule = new ExpirySchedule<string>((item) => expired.push(item));
    schedule.add('refreshed', 1_003_000);
    schedule.add('gone', 1_003_000);
    schedule.delete('gone', 1_003_000);
    schedule.delete('refreshed', 1_003_000);
    schedule.add('refreshed', 1_010_000);
    schedule.add('sooner', 1_001_000);
    jest.advanceTimersByTime(1_000);
    expect(expired).toEqual(['sooner']);
    jest.advanceTimersByTime(2_000);
    expect(expired).toEqual(['sooner']);
    jest.advanceTimersByTime(7_000);
    expect(expired).toEqual(['sooner', 'refreshed']);
  });

  it('hands over an item added with an expiry already past on the next tick', () => {
    const expired: string[] = [];
    const schedule = new ExpirySchedule<string>((item) => expired.push(item));
    schedule.add('stale', 999_000);
    expect(expired).toEqual([]);
    jest.advanceTimersByTime(0);
    expect(expired).toEqual(['stale']);
  });

  it('waits past the longest timer Node allows', () => {
    const expired: string[] = [];
    const schedule = new ExpirySchedule<string>((item) => expired.push(item));
    const in40Days = 1_000_000 + 40 * 86_400_000;
    schedule.add('far', in40Days);
    jest.advanceTimersByTime(2 ** 31 - 1);
    expect(expired).toEqual([]);
    jest.advanceTimersByTime(in40Days - 1_000_000 - (2 ** 31 - 1));
    expect(expired).toEqual(['far']);
  });
});
