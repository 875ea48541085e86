/**
 * publish — one atomic step for a batch of 1..N events of one stream: bind the stream to
 * this master (a new epoch after a failover or restart), assign the next seqs, append the
 * envelopes to the bounded history, SPUBLISH them in seq order, trim. Because it all runs in
 * one script, seqs are gapless and reach the channel in seq order whatever the number of
 * concurrent publishers; a batch is what one publisher queued for the stream while its
 * previous call was in flight, and every event in it still gets its own seq and answer.
 *
 * KEYS[1] meta          HASH epoch, seq, checkpointSeq, createdAt, replid, base, touched
 * KEYS[2] history       STREAM id `<seq>-0`, fields i (event id), t (ts ms), e (envelope JSON)
 * KEYS[3] checkpoint    STRING checkpoint JSON (dropped with a lost stream, expired here)
 * KEYS[4..] idempotency STRING earlier answer, one key per event that has an idempotency key,
 *                       in the order of those events
 *
 * ARGV[1] envelope head `{"v":1,"stream":"<stream>","seq":` (JSON built by the caller)
 * ARGV[2] live channel
 * ARGV[3] epoch for a new stream or a new epoch (the batch's first event id)
 * ARGV[4] max events kept (count retention, approximate: whole stream nodes are trimmed)
 * ARGV[5] max event age in ms (0 = no age retention)
 * ARGV[6] idle TTL of the stream's keys, seconds (0 = none)
 * ARGV[7] check age retention when the seq passes a multiple of this
 * ARGV[8] number of events N
 * ARGV[9] number of those with an idempotency key, M
 * then per event i (0-based), at 10 + 2i: event id · envelope tail
 *   `"id":"<id>","type":"<type>","payload":<payload JSON>}` (JSON built by the caller)
 * then per idempotent event j (0-based), at 10 + 2N + 2j: its index i · TTL seconds; its key
 *   is KEYS[4 + j]
 *
 * Returns { epoch, ts, checkpointSeq, r1..rN } where r_i is the event's seq (an integer), or,
 * when its idempotency key had already published, the first answer's JSON
 * `{"seq","epoch","id","ts"}` (a string; nothing was sent for it). The caller decides whether
 * a checkpoint is due (seq - checkpointSeq) and folds it off this path.
 *
 * The epoch is bound to the master's replication id (`master_replid`): a stream whose meta
 * names another one was last written under another master (a promoted replica after a
 * failover) or another lifetime of this one (a restart), which may have acknowledged writes
 * this data set lost. It gets a new epoch whose seqs continue after the surviving head
 * (`base`): no seq is ever reused under an epoch a client may hold, history and checkpoint
 * stay valid (they are a consistent prefix), and clients take a snapshot on the epoch change.
 *
 * The envelope is assembled by concatenation around JSON the caller encoded, never
 * re-encoded by cjson (which would turn `[]` into `{}`).
 */
export const PUBLISH_LUA = `
local meta, history, checkpoint = KEYS[1], KEYS[2], KEYS[3]
local n = tonumber(ARGV[8])

local now = redis.call('TIME')
local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local tsText = string.format('%d', ts)
local info = redis.call('INFO', 'replication')
local at = string.find(info, 'master_replid:', 1, true)
local replid = string.sub(info, at + 14, at + 53)

local m = redis.call('HMGET', meta, 'epoch', 'seq', 'checkpointSeq', 'replid', 'touched')
local epoch, seq, checkpointSeq, touched = m[1], tonumber(m[2]), tonumber(m[3] or '0'), m[5]
if not epoch then
  -- A stream without meta starts a new history; leftovers of a lost one must not mix in.
  epoch, seq, checkpointSeq, touched = ARGV[3], 0, 0, false
  redis.call('DEL', history, checkpoint)
  redis.call('HSET', meta, 'epoch', epoch, 'seq', 0, 'createdAt', ts, 'checkpointSeq', 0, 'replid', replid, 'base', 0)
elseif m[4] ~= replid then
  if m[4] then
    -- Last written under another master or lifetime: writes after this head may be lost
    -- and their seqs must not be reused under the epoch that carried them.
    epoch = ARGV[3]
    redis.call('HSET', meta, 'epoch', epoch, 'replid', replid, 'base', seq)
  else
    redis.call('HSET', meta, 'replid', replid)
  end
end

-- Idempotency keys are read before anything is written, and the seqs claimed in meta
-- first, so no failure half-way through could let a later call reuse one. \`known[key]\`:
-- the first answer (a string), or false when this batch publishes the key's event.
local keyOf, ttlOf, known = {}, {}, {}
local fresh = n
for j = 0, tonumber(ARGV[9]) - 1 do
  local i = tonumber(ARGV[10 + 2 * n + 2 * j])
  local key = KEYS[4 + j]
  keyOf[i], ttlOf[i] = key, tonumber(ARGV[11 + 2 * n + 2 * j])
  if known[key] == nil then
    known[key] = redis.call('GET', key) or false
    if known[key] then fresh = fresh - 1 end
  else
    fresh = fresh - 1
  end
end
local idleTtl = tonumber(ARGV[6])
-- The idle TTL is refreshed at a stream's first publish (a subscribe may have created meta
-- with a provisional TTL, and the first XADD creates the history key) and then about once
-- a minute, not on every event: \`touched\` is when it last was.
local refresh = fresh > 0 and (not touched or (idleTtl > 0 and ts - tonumber(touched) >= 1000 * math.min(60, idleTtl / 2)))
if refresh then
  redis.call('HSET', meta, 'seq', seq + fresh, 'touched', ts)
elseif fresh > 0 then
  redis.call('HSET', meta, 'seq', seq + fresh)
end
local first = seq

local head, channel = ARGV[1], ARGV[2]
local mid = ',"epoch":' .. cjson.encode(epoch) .. ',"ts":' .. tsText .. ','
local reply = { epoch, ts, checkpointSeq }
for i = 0, n - 1 do
  local key = keyOf[i]
  if key and known[key] then
    reply[4 + i] = known[key]
  else
    local id = ARGV[10 + 2 * i]
    seq = seq + 1
    local envelope = head .. seq .. mid .. ARGV[11 + 2 * i]
    redis.call('XADD', history, seq .. '-0', 'i', id, 't', tsText, 'e', envelope)
    redis.call('SPUBLISH', channel, '{"kind":"event","envelope":' .. envelope .. '}')
    if key then
      known[key] = '{"seq":' .. seq .. ',"epoch":' .. cjson.encode(epoch) .. ',"id":' .. cjson.encode(id) .. ',"ts":' .. tsText .. '}'
      redis.call('SET', key, known[key], 'EX', ttlOf[i])
    end
    reply[4 + i] = seq
  end
end
if fresh == 0 then return reply end

-- Retention never drops an event after the newest checkpoint: snapshots fold from there.
-- Count trims are approximate (\`MINID ~\`): only whole stream nodes go (at most 100 events,
-- stream-node-max-entries), so up to a node more than the limit stays, and a trim costs next
-- to nothing when there is no whole node to drop. Age trims (rare) are exact.
local keepFrom = seq - tonumber(ARGV[4]) + 1
local exact = '~'
local maxAge = tonumber(ARGV[5])
local ageEvery = tonumber(ARGV[7])
-- Reading the oldest entries costs about a sixth of a publish: only when the seq passes a
-- multiple of ageEvery.
if maxAge > 0 and math.floor(seq / ageEvery) > math.floor(first / ageEvery) then
  local oldest = redis.call('XRANGE', history, '-', '+', 'COUNT', 1)
  if oldest[1] and tonumber(oldest[1][2][4]) < ts - maxAge then
    local batch = redis.call('XRANGE', history, '-', '+', 'COUNT', 128)
    for _, entry in ipairs(batch) do
      if tonumber(entry[2][4]) >= ts - maxAge then break end
      local entrySeq = tonumber(string.match(entry[1], '^(%d+)'))
      if entrySeq + 1 > keepFrom then
        keepFrom = entrySeq + 1
        exact = '='
      end
    end
  end
end
if keepFrom > checkpointSeq + 1 then keepFrom = checkpointSeq + 1 end
if keepFrom > 1 then
  redis.call('XTRIM', history, 'MINID', exact, keepFrom .. '-0')
end

if refresh then
  if idleTtl > 0 then
    redis.call('EXPIRE', meta, idleTtl)
    redis.call('EXPIRE', history, idleTtl)
    redis.call('EXPIRE', checkpoint, idleTtl)
  else
    -- A subscribe may have created meta with a provisional TTL; this stream lives on.
    redis.call('PERSIST', meta)
  end
end
return reply
`;
