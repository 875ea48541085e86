import { NodeFunctionError, NodeFunctions } from './node-functions';

const context = (args: unknown, inputs: Record<string, unknown> = {}, item?: unknown, attempt = 1) => ({
  args,
  inputs,
  item,
  attempt,
  executionId: 'e',
  nodeId: 'n',
  signal: new AbortController().signal,
});

it('runs the built-ins on args, falling back to inputs', () => {
  const fns = new NodeFunctions();
  const run = (name: string, ...a: Parameters<typeof context>) => (fns.get(name) as (c: ReturnType<typeof context>) => unknown)(context(...a));
  expect(run('echo', { x: 1 })).toEqual({ x: 1 });
  expect(run('echo', undefined, {}, 'item-1')).toBe('item-1');
  expect(run('sum', [1, 2, [3]])).toBe(6);
  expect(run('sum', undefined, { a: 2, b: { v: 'no' }, c: 5 })).toBe(7);
  expect(run('concat', ['a', 'b', 1])).toBe('ab1');
  expect(run('concat', undefined, { a: 'x', b: 'y' })).toBe('xy');
  expect(() => run('fail', { message: 'nope' })).toThrow(new NodeFunctionError('nope'));
  expect(() => run('fail', { untilAttempt: 3 }, {}, undefined, 2)).toThrow('node failed');
  expect(run('fail', { untilAttempt: 3 }, {}, undefined, 3)).toEqual({ attempt: 3 });
});

it("registers a team's own functions once", () => {
  const fns = new NodeFunctions().register('shout', ({ args }) => String(args).toUpperCase());
  expect(fns.get('shout')?.(context('hi'))).toBe('HI');
  expect(() => fns.register('shout', () => null)).toThrow('registered already');
  expect(() => fns.register('echo', () => null)).toThrow('registered already');
});
