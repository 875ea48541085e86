/**
 * publish — one atomic step per event: assign the next seq, append the envelope to the
 * bounded history, trim, and SPUBLISH it to the stream's live channel. Because it all runs
 * in one script, seqs are gapless and reach the channel in seq order whatever the number of
 * concurrent publishers.
 *
 * KEYS[1] meta          HASH epoch, seq, createdAt, checkpointSeq
 * KEYS[2] history       STREAM id `<seq>-0`, fields i (event id), t (ts ms), e (envelope JSON)
 * KEYS[3] checkpoint    STRING checkpoint JSON (only expired here)
 * KEYS[4] compactLock   STRING taken when this publish makes a checkpoint due
 * KEYS[5] idempotency   STRING earlier answer for this idempotency key (unused when ARGV[11] = 0)
 *
 * ARGV[1]  stream name            ARGV[7]  max events kept (count retention)
 * ARGV[2]  live channel           ARGV[8]  max event age in ms (0 = no age retention)
 * ARGV[3]  epoch for a new stream ARGV[9]  idle TTL of the stream's keys, seconds (0 = none)
 * ARGV[4]  event id               ARGV[10] checkpoint every N events
 * ARGV[5]  event type             ARGV[11] idempotency TTL seconds (0 = no idempotency key)
 * ARGV[6]  payload JSON           ARGV[12] compaction lock ms
 *                                 ARGV[13] check age retention every N events
 *
 * Returns { seq, epoch, id, ts, checkpointDue (0|1), replayed (0|1) }; `replayed` = 1 when
 * the idempotency key had already published (the first answer is returned, nothing is sent).
 *
 * The envelope is assembled by concatenation around the payload JSON the caller encoded,
 * never re-encoded by cjson (which would turn `[]` into `{}`).
 */
export const PUBLISH_LUA = `
local meta, history, checkpoint, lock, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local idemTtl = tonumber(ARGV[11])

if idemTtl > 0 then
  local prior = redis.call('GET', idem)
  if prior then
    local p = cjson.decode(prior)
    return { p.seq, p.epoch, p.id, p.ts, 0, 1 }
  end
end

local now = redis.call('TIME')
local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)

local epoch = redis.call('HGET', meta, 'epoch')
if not epoch then
  -- A stream without meta starts a new history; leftovers of a lost one must not mix in.
  epoch = ARGV[3]
  redis.call('DEL', history, checkpoint)
  redis.call('HSET', meta, 'epoch', epoch, 'seq', 0, 'createdAt', ts, 'checkpointSeq', 0)
end
local seq = redis.call('HINCRBY', meta, 'seq', 1)

local envelope = '{"v":1,"stream":' .. cjson.encode(ARGV[1]) ..
  ',"seq":' .. seq ..
  ',"epoch":' .. cjson.encode(epoch) ..
  ',"id":' .. cjson.encode(ARGV[4]) ..
  ',"type":' .. cjson.encode(ARGV[5]) ..
  ',"ts":' .. string.format('%d', ts) ..
  ',"payload":' .. ARGV[6] .. '}'
redis.call('XADD', history, seq .. '-0', 'i', ARGV[4], 't', string.format('%d', ts), 'e', envelope)

-- Retention never drops an event after the newest checkpoint: snapshots fold from there.
local checkpointSeq = tonumber(redis.call('HGET', meta, 'checkpointSeq') or '0')
local keepFrom = seq - tonumber(ARGV[7]) + 1
local maxAge = tonumber(ARGV[8])
-- Reading the oldest entry costs about a sixth of a publish: do it every Nth event only.
if maxAge > 0 and seq % tonumber(ARGV[13]) == 0 then
  local oldest = redis.call('XRANGE', history, '-', '+', 'COUNT', 1)
  if oldest[1] and tonumber(oldest[1][2][4]) < ts - maxAge then
    local batch = redis.call('XRANGE', history, '-', '+', 'COUNT', 128)
    for _, entry in ipairs(batch) do
      if tonumber(entry[2][4]) >= ts - maxAge then break end
      local entrySeq = tonumber(string.match(entry[1], '^(%d+)'))
      if entrySeq + 1 > keepFrom then keepFrom = entrySeq + 1 end
    end
  end
end
if keepFrom > checkpointSeq + 1 then keepFrom = checkpointSeq + 1 end
if keepFrom > 1 then
  redis.call('XTRIM', history, 'MINID', keepFrom .. '-0')
end

redis.call('SPUBLISH', ARGV[2], '{"kind":"event","envelope":' .. envelope .. '}')

local idleTtl = tonumber(ARGV[9])
if idleTtl > 0 then
  -- Refresh at an epoch's first event (it creates the history key) and then about once a
  -- minute, not on every event.
  if seq == 1 or redis.call('TTL', meta) < idleTtl - math.min(60, idleTtl / 2) then
    redis.call('EXPIRE', meta, idleTtl)
    redis.call('EXPIRE', history, idleTtl)
    redis.call('EXPIRE', checkpoint, idleTtl)
  end
elseif seq == 1 then
  -- A subscribe may have created meta with a provisional TTL; this stream lives on.
  redis.call('PERSIST', meta)
end

local due = 0
if seq - checkpointSeq >= tonumber(ARGV[10]) then
  if redis.call('SET', lock, '1', 'NX', 'PX', tonumber(ARGV[12])) then due = 1 end
end

if idemTtl > 0 then
  redis.call('SET', idem, cjson.encode({ seq = seq, epoch = epoch, id = ARGV[4], ts = ts }), 'EX', idemTtl)
end
return { seq, epoch, ARGV[4], ts, due, 0 }
`;
