import { calculatorTool } from './calculator';
import { clockTool } from './clock';
import { deleteFileTool } from './delete-file';
import { httpGetTool, type HttpGetOptions } from './http-get';
import type { Tool } from './tool';

/**
 * The tools a worker offers, by name. The §9 built-ins are always there; a deployment adds
 * its own with `register` (docs/bots.md), and each bot picks the ones it may use by name.
 */
export class ToolRegistry {
  private readonly tools = new Map<string, Tool>();

  register(tool: Tool): this {
    if (this.tools.has(tool.spec.name)) throw new Error(`a tool named ${tool.spec.name} is registered already`);
    this.tools.set(tool.spec.name, tool);
    return this;
  }

  get(name: string): Tool | undefined {
    return this.tools.get(name);
  }

  names(): string[] {
    return [...this.tools.keys()];
  }
}

export const BUILT_IN_TOOLS = ['calculator', 'clock', 'http_get', 'delete_file'] as const;

export function builtInTools(httpGet: HttpGetOptions): ToolRegistry {
  return new ToolRegistry().register(calculatorTool).register(clockTool()).register(httpGetTool(httpGet)).register(deleteFileTool);
}
