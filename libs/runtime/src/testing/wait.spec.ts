import { waitFor } from './wait';

describe('waitFor', () => {
  it('returns the first truthy value of the probe', async () => {
    let n = 0;
    expect(await waitFor(() => (++n >= 3 ? n : 0), { intervalMs: 1 })).toBe(3);
  });

  it('fails at the deadline with the message and the last value or error', async () => {
    await expect(waitFor(() => false, { timeoutMs: 50, message: 'never' })).rejects.toThrow(/Timed out after 50 ms waiting for never; last: false/);
    await expect(
      waitFor(
        () => {
          throw new Error('boom');
        },
        { timeoutMs: 50 },
      ),
    ).rejects.toThrow(/last: boom/);
  });

  it('fails at the deadline when the probe never settles, instead of hanging', async () => {
    const started = Date.now();
    await expect(waitFor(() => new Promise<boolean>(() => undefined), { timeoutMs: 100, message: 'a hung read' })).rejects.toThrow(
      /waiting for a hung read; last: the probe did not come within/,
    );
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
