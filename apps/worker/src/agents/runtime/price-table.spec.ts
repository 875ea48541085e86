import { parsePriceTable, turnCost } from './price-table';

describe('parsePriceTable (AGENT_PRICES)', () => {
  it('reads USD per 1k prompt and completion tokens by model; empty is no table', () => {
    expect(parsePriceTable('{"gpt-4o-mini":{"prompt":0.00015,"completion":0.0006},"demo":{"prompt":0,"completion":1}}')).toEqual({
      'gpt-4o-mini': { prompt: 0.00015, completion: 0.0006 },
      demo: { prompt: 0, completion: 1 },
    });
    expect(parsePriceTable('')).toEqual({});
    expect(parsePriceTable('  ')).toEqual({});
  });

  it.each([
    ['{"m":', /must be JSON/],
    ['[1,2]', /JSON object of models/],
    ['"cheap"', /JSON object of models/],
    ['{"m":{"prompt":1}}', /model "m" must be/],
    ['{"m":{"prompt":-1,"completion":1}}', /model "m" must be/],
    ['{"m":{"prompt":"1","completion":1}}', /model "m" must be/],
    ['{"m":{"prompt":1,"completion":1,"currency":"EUR"}}', /model "m" must be/],
    ['{"m":2}', /model "m" must be/],
  ])('refuses %s, saying why', (text, why) => {
    expect(() => parsePriceTable(text)).toThrow(why);
  });
});

describe('turnCost', () => {
  const prices = parsePriceTable('{"big":{"prompt":0.01,"completion":0.03}}');

  it('prices a listed model from its tokens, whatever the provider said', () => {
    expect(turnCost(prices, 'big', { promptTokens: 1500, completionTokens: 500, costUsd: 99 })).toBe(0.03);
    expect(turnCost(prices, 'big', { promptTokens: 1, completionTokens: 2, costUsd: 0 })).toBe(0.00007);
  });

  it("keeps the provider's figure for a model not listed (nor inherited from Object)", () => {
    expect(turnCost(prices, 'small', { promptTokens: 1500, completionTokens: 500, costUsd: 0.5 })).toBe(0.5);
    expect(turnCost(prices, 'constructor', { promptTokens: 1500, completionTokens: 500, costUsd: 0.25 })).toBe(0.25);
  });
});
