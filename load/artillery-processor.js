/**
 * Artillery processor for load/artillery.yml: `watch` listens on the virtual user's socket
 * before it subscribes and checks what a dashboard relies on — each stream's seqs arrive
 * gapless and once (PROTOCOL.md §2, §5) — as Artillery counters:
 *   load.events, load.gaps, load.duplicates, and the histogram load.publish_to_deliver_ms
 *   (envelope `ts` to receipt, ms; same machine clock).
 */
function watch(context, events, done) {
  const socket = context.sockets && context.sockets[''];
  if (!socket) return done(new Error('watch: the virtual user has no socket yet'));
  const last = new Map();
  socket.on('event', (envelope) => {
    events.emit('counter', 'load.events', 1);
    events.emit('histogram', 'load.publish_to_deliver_ms', Date.now() - envelope.ts);
    // The subscribe ack's seq (captured as startSeq) is where the live events start.
    const previous = last.has(envelope.stream) ? last.get(envelope.stream) : Number(context.vars.startSeq);
    if (Number.isFinite(previous) && envelope.seq !== previous + 1) {
      events.emit('counter', envelope.seq <= previous ? 'load.duplicates' : 'load.gaps', 1);
    }
    if (!(envelope.seq <= previous)) last.set(envelope.stream, envelope.seq);
  });
  return done();
}

module.exports = { watch };
