import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from '@app/runtime';
import { connectSocket } from './support/sockets';

/** `npm start`'s launcher: private Redis + gateway + worker, a token that works, a clean stop. */
it('starts the whole system on the embedded default and stops it cleanly', async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'rtgw-embedded-'));
  const [port, workerPort] = [await freePort(), await freePort()];
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, PORT: String(port), WORKER_PORT: String(workerPort), LOG_LEVEL: 'warn' };
  const child = spawn(process.execPath, [join(__dirname, '..', 'dist', 'apps', 'embedded', 'main.js')], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    await waitFor(() => output.includes('Realtime gateway ready at') || child.exitCode !== null, { timeoutMs: 60_000, message: 'the ready banner' });
    if (child.exitCode !== null) throw new Error(`the launcher exited (${child.exitCode}):\n${output}`);
    const token = /scope admin, 12 h\):\s+(\S+)/.exec(output)?.[1] as string;
    const socket = await connectSocket(`http://127.0.0.1:${port}`, token);
    await socket.command('subscribe', { stream: 'bot:embedded' });
    expect(await socket.command('chat', { botId: 'embedded', content: 'hi' })).toMatchObject({ ok: true });
    await waitFor(() => socket.events.some((e) => e.type === 'done'), { message: 'the echo bot answered' });
    socket.close();
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  } finally {
    child.kill('SIGKILL');
    rmSync(cwd, { recursive: true, force: true });
  }
}, 120_000);
