import { RealtimeClient, type RealtimeClientOptions } from '@app/client';
import WebSocket from 'ws';

/** The SDK's two wires; SDK end-to-end scenarios run on each (`describe.each(SDK_TRANSPORTS)`). */
export const SDK_TRANSPORTS = ['socket.io', 'websocket'] as const;
export type SdkTransport = (typeof SDK_TRANSPORTS)[number];

/** A RealtimeClient on the given transport (Node 20 has no global WebSocket: `ws` stands in). */
export function sdkClient(transport: SdkTransport, options: Omit<RealtimeClientOptions, 'transport' | 'WebSocket'>): RealtimeClient {
  return new RealtimeClient({ ...options, transport, ...(transport === 'websocket' ? { WebSocket } : {}) });
}
