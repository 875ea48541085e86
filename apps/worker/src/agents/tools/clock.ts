import type { Tool } from './tool';

/** `clock {}` (risk low): the current time, as an ISO string and ms since the epoch. */
export function clockTool(now: () => number = Date.now): Tool {
  return {
    spec: {
      name: 'clock',
      description: 'Returns the current date and time (UTC).',
      parameters: { type: 'object', properties: {}, additionalProperties: false },
    },
    risk: 'low',
    run: () => {
      const ms = now();
      return Promise.resolve({ iso: new Date(ms).toISOString(), epochMs: ms });
    },
  };
}
