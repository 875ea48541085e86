export * from './keys';
export * from './retention';
export * from './scripts';
export * from './stream-history';
export * from './stream-publisher';
export * from './queues';
export * from './domain-store';
export * from './backplane.env';
