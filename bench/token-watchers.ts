import { io, type Socket } from 'socket.io-client';
import type { Envelope } from '@app/protocol';
import { cpuNow, nowUs, serveRequests } from './common';

/**
 * The dashboards of bench/coalescing.ts, as one process: a socket per bot stream on a gateway
 * pod, subscribed with the `subscribe` command. Each `message` delta is split into the tokens
 * of bench/token-runs.ts (`<i>@<due µs, base 36> `); a token's latency is its arrival in the
 * `event` handler minus its due time (CLOCK_MONOTONIC, shared by the processes). Each reply
 * is checked as it comes — every token once, in order, none cut — and at its `usage` against
 * the number of tokens the run says it produced; each socket also checks its seqs are gapless.
 */
interface Reply {
  next: number;
  /** Text after the last complete token: a token cut across two deltas would wait here. */
  carry: string;
}

const sockets: Socket[] = [];
const stats = { events: 0, tokens: 0, replies: 0, tokenErrors: 0, replyErrors: 0, seqErrors: 0, lastUs: 0 };
let sampling = false;
let samples: number[] = [];

function watch(socket: Socket): void {
  const replies = new Map<string, Reply>();
  let lastSeq = 0;
  socket.on('event', (envelope: Envelope) => {
    const now = nowUs();
    stats.events++;
    stats.lastUs = now;
    if (lastSeq !== 0 && envelope.seq !== lastSeq + 1) stats.seqErrors++;
    lastSeq = envelope.seq;
    if (envelope.type === 'message') {
      const { messageId, content } = envelope.payload as { messageId: string; content: string };
      const reply = replies.get(messageId) ?? { next: 0, carry: '' };
      replies.set(messageId, reply);
      const parts = (reply.carry + content).split(' ');
      reply.carry = parts.pop() ?? '';
      for (const part of parts) {
        const at = part.indexOf('@');
        const index = Number(part.slice(0, at));
        if (at < 0 || index !== reply.next) stats.tokenErrors++;
        reply.next = index + 1;
        stats.tokens++;
        if (sampling) samples.push(now - parseInt(part.slice(at + 1), 36));
      }
    } else if (envelope.type === 'usage') {
      const { runId, completionTokens } = envelope.payload as { runId: string; completionTokens: number };
      const reply = replies.get(`${runId}.reply`);
      if ((reply?.next ?? 0) !== completionTokens || reply?.carry) stats.replyErrors++;
      replies.delete(`${runId}.reply`);
      stats.replies++;
    }
  });
}

function connectOne(url: string, token: string, stream: string): Promise<Socket> {
  const socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true, timeout: 20_000, auth: { token } });
  watch(socket);
  return new Promise<Socket>((resolve, reject) => {
    socket.once('connect_error', (error) => {
      socket.close();
      reject(error);
    });
    // The gateway's first packet is `hello`; the subscribe goes after it, as a dashboard's does.
    socket.once('hello', () => {
      socket
        .timeout(20_000)
        .emitWithAck('command', { v: 1, id: `watch-${stream}`, type: 'subscribe', payload: { stream } })
        .then((ack: { ok: boolean }) => (ack.ok ? resolve(socket) : reject(new Error(`subscribe ${stream} refused: ${JSON.stringify(ack)}`))), reject);
    });
  });
}

serveRequests({
  connect: async (request) => {
    const streams = request.streams as string[];
    for (let i = 0; i < streams.length; i += 50) {
      sockets.push(...(await Promise.all(streams.slice(i, i + 50).map((stream) => connectOne(String(request.url), String(request.token), stream)))));
    }
    return { connected: sockets.length };
  },
  reset: (request) => {
    samples = [];
    (globalThis as { gc?: () => void }).gc?.();
    Object.assign(stats, { events: 0, tokens: 0, replies: 0, tokenErrors: 0, replyErrors: 0, seqErrors: 0, lastUs: 0 });
    sampling = request.sample === true;
    return { cpu: cpuNow() };
  },
  stats: (request) => ({ ...stats, cpu: cpuNow(), ...(request.samples === true ? { samples: Float64Array.from(samples) } : {}) }),
});
process.send?.({ ready: true });
