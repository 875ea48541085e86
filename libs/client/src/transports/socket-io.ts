import { type ClientToServerEvents, ErrorCode, type HandshakeError, type ServerToClientEvents } from '@app/protocol';
import { io, type Socket } from 'socket.io-client';
import type { TransportClose, TransportFactory } from '../transport';

export interface SocketIoTransportOptions {
  /** Socket.IO's own transports; long-polling needs sticky sessions (PROTOCOL.md §1). @default ['websocket'] */
  transports?: Array<'websocket' | 'polling'>;
}

type RawSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/**
 * The Socket.IO transport (PROTOCOL.md §1): the token in the handshake's `auth`, server
 * events as Socket.IO events, commands acknowledged through the emit callback. Socket.IO's
 * own reconnection is off: the client reconnects, to the next URL, with its own backoff.
 */
export function socketIoTransport(options: SocketIoTransportOptions = {}): TransportFactory {
  return ({ url, token, resumeSession }, handlers) => {
    const socket: RawSocket = io(url, {
      transports: options.transports ?? ['websocket'],
      reconnection: false,
      forceNew: true,
      auth: { token },
      ...(resumeSession !== undefined ? { query: { resume_session: resumeSession } } : {}),
    });
    let done = false;
    const finish = (close: TransportClose): void => {
      if (done) return;
      done = true;
      handlers.closed(close);
    };

    socket.on('hello', (hello) => handlers.hello(hello));
    socket.on('event', (envelope) => handlers.event(envelope));
    socket.on('presence', (change) => handlers.presence(change));
    socket.on('session_history', (history) => handlers.sessionHistory(history));
    socket.on('command_error', (error) => handlers.commandError(error));
    socket.on('draining', (notice) => handlers.draining(notice));
    socket.on('auth_expired', () => handlers.authExpired());
    socket.on('connect_error', (error: Error & { data?: Partial<HandshakeError> }) => {
      const code = error.data?.code;
      if (code === ErrorCode.UNAUTHORIZED) return finish({ reason: 'unauthorized', message: error.data?.message ?? 'unauthorized' });
      // A draining pod refuses new handshakes with UNAVAILABLE (as `/ws` closes 4409).
      if (code === ErrorCode.UNAVAILABLE) return finish({ reason: 'elsewhere' });
      finish({ reason: 'lost', message: error.message });
    });
    socket.on('disconnect', (reason) => finish({ reason: 'lost', message: reason }));

    return {
      send(request, onAck) {
        socket.emit('command', request, onAck);
      },
      close() {
        done = true;
        socket.removeAllListeners();
        socket.close();
      },
    };
  };
}
