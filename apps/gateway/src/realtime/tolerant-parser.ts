import * as parser from 'socket.io-parser';

/**
 * The Socket.IO event a malformed frame turns into on the server. Socket.IO's own decoder
 * throws on a malformed frame and the server then closes the whole connection; with this
 * parser the frame is dropped and the socket is told, as `command_error`, instead.
 */
export const MALFORMED_FRAME_EVENT = 'rt:malformed_frame';

export class TolerantDecoder extends parser.Decoder {
  static onMalformed: (reason: string) => void = () => undefined;

  override add(chunk: unknown): void {
    try {
      super.add(chunk);
    } catch (error) {
      const reason = error instanceof Error ? error.message : 'malformed frame';
      // Drop any half-reconstructed binary packet: the next frame starts clean.
      this.destroy();
      TolerantDecoder.onMalformed(reason);
      this.emitReserved('decoded', { type: parser.PacketType.EVENT, nsp: '/', data: [MALFORMED_FRAME_EVENT, reason] });
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
