import WebSocket from 'ws';

/**
 * A Socket.IO connection spoken by hand over a raw WebSocket, for frames no Socket.IO client
 * would send. Engine.IO v4 framing: `0` open, `2`/`3` ping/pong, `4` message; inside a
 * message, Socket.IO packets: `0` connect, `2` event, `3` ack.
 */
export class RawSocketIo {
  readonly frames: string[] = [];
  private waiters: Array<{ match: (frame: string) => boolean; resolve: (frame: string) => void }> = [];

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const frame = data.toString();
      if (frame === '2') return ws.send('3'); // answer pings, or the server drops us
      this.frames.push(frame);
      this.waiters = this.waiters.filter((w) => (w.match(frame) ? (w.resolve(frame), false) : true));
    });
  }

  static async connect(baseUrl: string, token: string): Promise<RawSocketIo> {
    const ws = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`);
    const raw = new RawSocketIo(ws);
    await raw.next((f) => f.startsWith('0{'));
    ws.send(`40${JSON.stringify({ token })}`);
    await raw.next((f) => f.startsWith('42["hello"'));
    return raw;
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** A text frame, or a binary one (an attachment of a binary packet). */
  send(frame: string | Buffer): void {
    this.ws.send(frame);
  }

  next(match: (frame: string) => boolean, timeoutMs = 5000): Promise<string> {
    const seen = this.frames.find(match);
    if (seen) {
      this.frames.splice(this.frames.indexOf(seen), 1);
      return Promise.resolve(seen);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames)}`)), timeoutMs);
      this.waiters.push({
        match,
        resolve: (frame) => {
          clearTimeout(timer);
          this.frames.splice(this.frames.indexOf(frame), 1);
          resolve(frame);
        },
      });
    });
  }

  closed(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => this.ws.once('close', () => resolve()));
  }

  close(): void {
    this.ws.close();
  }
}
