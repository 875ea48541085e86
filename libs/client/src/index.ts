export * from './backoff';
export * from './realtime-client';
export * from './stream-store';
