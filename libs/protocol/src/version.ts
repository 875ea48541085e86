/** The wire protocol version carried in every envelope (`v`) and command (`v`), and in `hello.protocol`. */
export const PROTOCOL_VERSION = 1 as const;
export type ProtocolVersion = typeof PROTOCOL_VERSION;
