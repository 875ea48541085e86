/**
 * `cluster-key-slot` (the CRC16 ioredis routes cluster commands with) ships no types. Listed
 * in the root tsconfig.json's `files`, which every app's tsconfig inherits.
 */
declare module 'cluster-key-slot' {
  /** The Redis Cluster hash slot (0..16383) of a key, honouring a `{hash tag}`. */
  function calculateSlot(key: string | Buffer): number;
  export = calculateSlot;
}
