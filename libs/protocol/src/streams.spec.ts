import { parseStream, scopeAllows } from './streams';

describe('streams', () => {
  it('parses bot and dag stream names and nothing else', () => {
    expect(parseStream('bot:b-1.x_y')).toEqual({ kind: 'bot', id: 'b-1.x_y', name: 'bot:b-1.x_y' });
    expect(parseStream('dag:e1')).toEqual({ kind: 'dag', id: 'e1', name: 'dag:e1' });
    for (const bad of ['bot', 'bot:', 'user:1', 'bot:a:b', 'bot:a/b', ` bot:a`, `bot:${'a'.repeat(129)}`, null, 5]) {
      expect(parseStream(bad)).toBeNull();
    }
    expect(parseStream(`bot:${'a'.repeat(128)}`)).not.toBeNull();
  });

  it('lets scopes read exactly the streams they name', () => {
    expect(scopeAllows(['bot:b1'], 'bot:b1')).toBe(true);
    expect(scopeAllows(['bot:b1'], 'bot:b2')).toBe(false);
    expect(scopeAllows(['bot:*'], 'bot:b2')).toBe(true);
    expect(scopeAllows(['bot:*'], 'dag:e1')).toBe(false);
    expect(scopeAllows(['dag:*'], 'dag:e1')).toBe(true);
    expect(scopeAllows(['admin'], 'dag:e1')).toBe(true);
    expect(scopeAllows([], 'bot:b1')).toBe(false);
    expect(scopeAllows(['bot:b*'], 'bot:b1')).toBe(false);
  });
});
