import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { calculatorTool, evaluate } from './calculator';
import { clockTool } from './clock';
import { deleteFileTool } from './delete-file';
import { httpGetTool } from './http-get';
import { needsApproval, ToolError } from './tool';
import { builtInTools } from './tool-registry';

const context = { signal: new AbortController().signal, botId: 'b', runId: 'r' };

describe('calculator', () => {
  it.each([
    ['2+2', '4'],
    ['2 + 3 * 4', '14'],
    ['(2 + 3) * 4', '20'],
    ['-3 + 10 / 4', '-0.5'],
    ['2 ^ 10', '1024'],
    ['2 ^ 3 ^ 2', '512'],
    ['7 % 4', '3'],
    ['0.1 + 0.2', '0.3'],
    ['1e3 / .5', '2000'],
    ['--4', '4'],
  ])('%s = %s', async (expression, result) => {
    expect(await calculatorTool.run({ expression }, context)).toBe(result);
  });

  it.each(['', '2 +', '2 2', '(1', 'process.exit()', 'constructor', '1/0', '2; 3', 'x'.repeat(501)])('refuses %j with a ToolError', (expression) => {
    expect(() => evaluate(expression)).toThrow(ToolError);
  });

  it('wants a string expression', async () => {
    await expect(calculatorTool.run({ expression: 4 }, context)).rejects.toThrow(/"expression" must be a non-empty string/);
  });
});

describe('clock, delete_file and the registry', () => {
  it('tells the time it is given', async () => {
    expect(await clockTool(() => 0).run({}, context)).toEqual({ iso: '1970-01-01T00:00:00.000Z', epochMs: 0 });
  });

  it('deletes nothing and says so', async () => {
    expect(await deleteFileTool.run({ path: '/etc/passwd' }, context)).toEqual({ deleted: '/etc/passwd', simulated: true });
    expect(deleteFileTool.risk).toBe('high');
  });

  it('declares the §9 risks; the threshold is inclusive', () => {
    const tools = builtInTools({ allowedHosts: [], timeoutMs: 1000 });
    expect(tools.names().map((name) => [name, tools.get(name)?.risk])).toEqual([
      ['calculator', 'low'],
      ['clock', 'low'],
      ['http_get', 'medium'],
      ['delete_file', 'high'],
    ]);
    expect(needsApproval('high', 'high')).toBe(true);
    expect(needsApproval('critical', 'high')).toBe(true);
    expect(needsApproval('medium', 'high')).toBe(false);
    expect(needsApproval('low', 'low')).toBe(true);
    expect(() => tools.register(deleteFileTool)).toThrow(/registered already/);
  });
});

describe('http_get', () => {
  let server: Server;
  let port: number;
  beforeAll(async () => {
    server = createServer((request, response) => {
      if (request.url === '/redirect') {
        response.writeHead(302, { location: 'http://elsewhere.example/' });
        return response.end();
      }
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.end('x'.repeat(100));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  it('refuses every host by default', async () => {
    const tool = httpGetTool({ allowedHosts: [], timeoutMs: 1000 });
    await expect(tool.run({ url: `http://127.0.0.1:${port}/` }, context)).rejects.toThrow(/not on the allow-list/);
  });

  it('fetches from an allowed host, cut at maxBytes, without following redirects', async () => {
    const tool = httpGetTool({ allowedHosts: ['127.0.0.1'], timeoutMs: 1000, maxBytes: 10 });
    expect(await tool.run({ url: `http://127.0.0.1:${port}/` }, context)).toEqual({ status: 200, body: 'x'.repeat(10) });
    expect(await tool.run({ url: `http://127.0.0.1:${port}/redirect` }, context)).toEqual({ status: 302, body: '' });
  });

  it('refuses what is not an http(s) URL', async () => {
    const tool = httpGetTool({ allowedHosts: ['127.0.0.1'], timeoutMs: 1000 });
    await expect(tool.run({ url: 'file:///etc/passwd' }, context)).rejects.toThrow(/only http and https/);
    await expect(tool.run({ url: 'not a url' }, context)).rejects.toThrow(/not a URL/);
  });
});
