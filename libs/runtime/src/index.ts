export * from './config';
export * from './logger';
export * from './redis';
export * from './redis-server';
export * from './acquire-redis';
export * from './testing/wait';
export * from './shutdown';
