import * as parser from 'socket.io-parser';

/**
 * The Socket.IO event a malformed frame turns into on the server. Socket.IO's own decoder
 * throws on a malformed frame and the server then closes the whole connection; with this
 * parser the frame is dropped and the socket is told instead: through the frame's ack when
 * the decoder got as far as its id, otherwise as `command_error`.
 */
export const MALFORMED_FRAME_EVENT = 'rt:malformed_frame';

/** The packet a binary attachment completes (socket.io-parser keeps it in a private field). */
interface PendingBinaryPacket {
  id?: number;
  nsp?: string;
}

export class TolerantDecoder extends parser.Decoder {
  static onMalformed: (reason: string) => void = () => undefined;

  override add(chunk: unknown): void {
    // Read before super.add: reassembling a binary packet whose JSON nests thousands deep
    // overflows the stack in socket.io-parser's recursive reconstruction, and that packet's
    // id is what lets the client's ack be answered.
    const pending = (this as unknown as { reconstructor?: { reconPack?: PendingBinaryPacket } | null }).reconstructor?.reconPack;
    try {
      super.add(chunk);
    } catch (error) {
      const reason = error instanceof RangeError ? 'the frame nests too deep to decode' : error instanceof Error ? error.message : 'malformed frame';
      // Drop any half-reconstructed binary packet: the next frame starts clean.
      this.destroy();
      TolerantDecoder.onMalformed(reason);
      const id = typeof pending?.id === 'number' ? { id: pending.id } : {};
      const nsp = typeof pending?.nsp === 'string' ? pending.nsp : '/';
      this.emitReserved('decoded', { type: parser.PacketType.EVENT, nsp, ...id, data: [MALFORMED_FRAME_EVENT, reason] });
    }
  }
}

/** A Socket.IO `parser` option: the standard encoder with the tolerant decoder. */
export const tolerantParser = {
  protocol: parser.protocol,
  PacketType: parser.PacketType,
  Encoder: parser.Encoder,
  Decoder: TolerantDecoder,
};
