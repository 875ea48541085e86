import { stringArg, type Tool } from './tool';

/**
 * `delete_file {path}` (risk high): the demonstration of a dangerous tool. It touches no
 * file system at all — it only reports what it would have deleted — so approvals can be
 * tried anywhere without risk.
 */
export const deleteFileTool: Tool = {
  spec: {
    name: 'delete_file',
    description: 'Deletes a file (a simulation: nothing is deleted). Needs approval.',
    parameters: { type: 'object', properties: { path: { type: 'string' } }, required: ['path'], additionalProperties: false },
  },
  risk: 'high',
  run: async (args) => ({ deleted: stringArg(args, 'path'), simulated: true }),
};
