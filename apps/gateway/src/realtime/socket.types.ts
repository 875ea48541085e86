import type { ClientToServerEvents, ServerToClientEvents } from '@app/protocol';
import type { Server, Socket } from 'socket.io';
import type { ConnectionData } from './connection';

/** Where Socket.IO listens; engine.io answers the upgrades under `${SOCKET_IO_PATH}/`. */
export const SOCKET_IO_PATH = '/socket.io';

/** Pods talk through the backplane, never through Socket.IO's inter-server events. */
export type InterServerEvents = Record<string, never>;

export type GatewayServer = Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, ConnectionData>;
export type GatewaySocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, ConnectionData>;
