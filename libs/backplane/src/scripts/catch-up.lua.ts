/**
 * catch_up — everything a subscriber needs, read in one atomic step: either the events
 * after `sinceSeq` (a replay) or the newest checkpoint plus the events after it (the
 * material of a snapshot). The head seq returned is the position the reader is at.
 *
 * KEYS[1] meta        KEYS[2] history        KEYS[3] checkpoint
 *
 * ARGV[1] epoch to create the stream with when it has no history yet, or to bind it with
 *         to this master when it was last written under another one (see publish.lua.ts)
 * ARGV[2] sinceSeq (-1: the caller wants a snapshot)
 * ARGV[3] the client's epoch ('' when none)
 * ARGV[4] the client's lastId, the id of its event at sinceSeq ('' when none)
 * ARGV[5] max events to replay; more than that is answered with a snapshot
 * ARGV[6] provisional TTL of a stream created here, seconds: it has no events yet, and
 *         the first publish sets the stream's real TTL
 *
 * Returns { mode, reason, epoch, head, checkpoint, checkpointSeq, envelope... } where mode
 * is `replay` or `snapshot`, reason says why a snapshot was chosen (`requested`, `epoch`,
 * `diverged`, `trimmed`, `too_far`), checkpoint is the checkpoint JSON or '' and
 * checkpointSeq its seq (snapshot mode only), and the envelopes follow in seq order: after
 * sinceSeq (replay) or after the checkpoint. After a new epoch that continues the seqs
 * (a failover or restart), the checkpoint and the events before the epoch's first one carry
 * the previous epoch: they are the surviving prefix the new epoch continues.
 */
export const CATCH_UP_LUA = `
local meta, history, checkpoint = KEYS[1], KEYS[2], KEYS[3]
local sinceSeq = tonumber(ARGV[2])

local info = redis.call('INFO', 'replication')
local at = string.find(info, 'master_replid:', 1, true)
local replid = string.sub(info, at + 14, at + 53)

local m = redis.call('HMGET', meta, 'epoch', 'seq', 'replid')
local epoch, head = m[1], tonumber(m[2])
if not epoch then
  epoch, head = ARGV[1], 0
  local now = redis.call('TIME')
  redis.call('DEL', history, checkpoint)
  redis.call('HSET', meta, 'epoch', epoch, 'seq', 0, 'createdAt', tonumber(now[1]) * 1000, 'checkpointSeq', 0, 'replid', replid, 'base', 0)
  local ttl = tonumber(ARGV[6])
  if ttl > 0 then redis.call('EXPIRE', meta, ttl) end
elseif m[3] ~= replid then
  if m[3] then
    -- As publish does: another master or lifetime wrote this head; continue under a new epoch.
    epoch = ARGV[1]
    redis.call('HSET', meta, 'epoch', epoch, 'replid', replid, 'base', head)
  else
    redis.call('HSET', meta, 'replid', replid)
  end
end

local function envelopes(fromSeq, count)
  local out = {}
  local entries
  if count then
    entries = redis.call('XRANGE', history, fromSeq .. '-0', '+', 'COUNT', count)
  else
    entries = redis.call('XRANGE', history, fromSeq .. '-0', '+')
  end
  for _, entry in ipairs(entries) do
    out[#out + 1] = entry[2][6]
  end
  return out, entries
end

local function snapshot(reason)
  local cp = redis.call('GET', checkpoint) or ''
  local cpSeq = tonumber(redis.call('HGET', meta, 'checkpointSeq') or '0')
  local reply = { 'snapshot', reason, epoch, head, cp, cpSeq }
  local tail = envelopes(cpSeq + 1)
  for _, e in ipairs(tail) do reply[#reply + 1] = e end
  return reply
end

if sinceSeq < 0 then return snapshot('requested') end
if ARGV[3] ~= epoch then return snapshot('epoch') end
if sinceSeq > head then return snapshot('diverged') end

if sinceSeq > 0 and ARGV[4] ~= '' then
  local entry = redis.call('XRANGE', history, sinceSeq .. '-0', sinceSeq .. '-0')
  if not entry[1] then return snapshot('trimmed') end
  if entry[1][2][2] ~= ARGV[4] then return snapshot('diverged') end
end

if sinceSeq == head then return { 'replay', '', epoch, head, '', 0 } end
local maxReplay = tonumber(ARGV[5])
if head - sinceSeq > maxReplay then return snapshot('too_far') end

local replay, entries = envelopes(sinceSeq + 1, maxReplay)
if not entries[1] or entries[1][1] ~= (sinceSeq + 1) .. '-0' then return snapshot('trimmed') end
local reply = { 'replay', '', epoch, head, '', 0 }
for _, e in ipairs(replay) do reply[#reply + 1] = e end
return reply
`;
