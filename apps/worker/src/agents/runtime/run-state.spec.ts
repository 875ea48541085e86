import { parsePlanSteps, planMarkdown } from './run-state';

describe('plans as markdown', () => {
  it('reads back the steps it wrote', () => {
    expect(parsePlanSteps(planMarkdown('ship', ['build', 'test it', 'release']))).toEqual(['build', 'test it', 'release']);
  });

  it('reads list items of an edited plan, whatever their markers', () => {
    expect(parsePlanSteps('# My plan\n\n1) first\n- second\n* third\n+ fourth\n\nnot a step')).toEqual(['first', 'second', 'third', 'fourth']);
  });

  it('takes plain lines when there are no list items', () => {
    expect(parsePlanSteps('Plan: x\n\nalpha\n  beta  \n# heading')).toEqual(['alpha', 'beta']);
  });
});
