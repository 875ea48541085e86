export * from './backoff';
export * from './realtime-client';
export * from './stream-store';
export * from './transport';
export * from './transports/websocket';
