/**
 * publish — one atomic step for a batch of events of one or more streams (on a Redis
 * Cluster, streams of one hash slot): for each stream, bind it to this master (a new epoch
 * after a failover or restart), assign the next seqs, append the envelopes to the bounded
 * history, SPUBLISH them in seq order, trim. Because it all runs in one script, seqs are
 * gapless and reach each channel in seq order whatever the number of concurrent publishers.
 * A batch is what one publisher queued for the streams of one script target while its
 * previous call there was in flight; every event in it still gets its own seq and answer.
 * The clock and the master's replication id are read once per call, whatever it carries.
 *
 * Per stream s (1-based), three keys:
 * KEYS[3s-2] meta        HASH epoch, seq, checkpointSeq, createdAt, replid, base, touched, oldestTs
 * KEYS[3s-1] history     STREAM id `<seq>-0`, fields i (event id), t (ts ms), e (envelope JSON)
 * KEYS[3s]   checkpoint  STRING checkpoint JSON (dropped with a lost stream, expired here)
 * then KEYS[3S+1..3S+P] producer  STRING `<epoch>:<seq>:<answer>`, one key per producer that
 *                       stamps an event of this call (see below), each on its stream's tag
 *
 * ARGV[1] number of streams S
 * ARGV[2] number of stamped events M
 * ARGV[3] max events kept (count retention, approximate: whole stream nodes are trimmed)
 * ARGV[4] max event age in ms (0 = no age retention)
 * ARGV[5] idle TTL of the streams' keys, seconds (0 = none)
 * ARGV[6] trim a stream (by count, and by age when set) when its seq passes a multiple of this
 * then per stream s (0-based), at 7 + 3s: envelope head `{"v":1,"stream":"<stream>","seq":`
 *   (JSON built by the caller) · live channel · its number of events n_s
 * then per event i (0-based, grouped by stream in stream order, each stream's in publish
 *   order), at 7 + 3S + 2i: event id · envelope tail
 *   `"id":"<id>","type":"<type>","payload":<payload JSON>}` (JSON built by the caller)
 * then per stamped event j (0-based, in event order), at 7 + 3S + 2N + 5j: its index i ·
 *   its producer's key number p (1-based: KEYS[3S + p]) · producer epoch · producer seq ·
 *   TTL of the producer key, seconds
 *
 * **Producers** (exactly-once publishing, the one mechanism for it): an event may carry a
 * stamp (producer id, epoch, seq), fenced per stream by its producer key. The producer's
 * newest accepted stamp is kept; an event whose stamp is
 *   - of an older epoch is refused (`!fenced:<epoch>`): a zombie — a worker whose job was
 *     given to another after it stalled — cannot publish after its successor started;
 *   - of the same epoch and a seq at or below the newest is a duplicate (a resend after a
 *     reconnect, a retried call): nothing is published, and its answer is the producer's
 *     newest answer (for a producer of one event — an idempotency key — the first answer);
 *   - newer is published, and becomes the newest.
 * A producer's first stamp in a call is written as the old one is read (`SET … GET`), before
 * the stream's seqs are claimed; nothing can fail between the two (a producer key of another
 * type is left alone and its stamp not checked). A duplicate or a refused stamp puts the old
 * value back with the new TTL: a fence lives a day after the last attempt it saw. A stream
 * whose history or meta key has the wrong type fails after its stamps were written: a retry
 * of those stamps is then answered as a duplicate of events that were not published.
 *
 * Returns { ts, then per stream: epoch · checkpointSeq, then per event: r_i } where r_i is
 * the event's seq (an integer), or, for a duplicate, the answer JSON `{"seq","epoch","id","ts"}`
 * (a string; nothing was sent for it), or `!fenced:<epoch>` (a string). A stream
 * whose step failed (e.g. a key of the wrong type) answers false · the error message, and
 * false for each of its events; the other streams of the call are unaffected (its seqs may
 * have been claimed: they are never reused). An error of the server's state (READONLY,
 * OOM, …: raised before anything is written) fails the whole call. The caller decides whether a
 * checkpoint is due (seq - checkpointSeq) and folds it off this path.
 *
 * The epoch is bound to the master's replication id (`master_replid`): a stream whose meta
 * names another one was last written under another master (a promoted replica after a
 * failover) or another lifetime of this one (a restart), which may have acknowledged writes
 * this data set lost. It gets a new epoch whose seqs continue after the surviving head
 * (`base`): no seq is ever reused under an epoch a client may hold, history and checkpoint
 * stay valid (they are a consistent prefix), and clients take a snapshot on the epoch change.
 *
 * The envelope is assembled by concatenation around JSON the caller encoded, never
 * re-encoded by cjson (which would turn `[]` into `{}`), and SPUBLISHed as it is: the
 * gateway's subscriber takes a channel message without `kind` for an event. Redis' Lua
 * hashes every byte of each string it makes, so each string less per event counts (the
 * `{kind, envelope}` wrapper this script used to add cost ~10 % of its Redis CPU).
 */
export const PUBLISH_LUA = `
local streams, stamped = tonumber(ARGV[1]), tonumber(ARGV[2])
local maxEvents, maxAge, idleTtl, every = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local eventArgs = 7 + 3 * streams
local events = 0
for s = 0, streams - 1 do events = events + tonumber(ARGV[9 + 3 * s]) end
local stampArgs = eventArgs + 2 * events

local now = redis.call('TIME')
local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local tsText = string.format('%d', ts)
local info = redis.call('INFO', 'replication')
local at = string.find(info, 'master_replid:', 1, true)
local replid = string.sub(info, at + 14, at + 53)

-- Event index (0-based) -> its stamp { key, epoch, seq, ttl }.
local stampOf = {}
for j = 0, stamped - 1 do
  local arg = stampArgs + 5 * j
  stampOf[tonumber(ARGV[arg])] = {
    key = KEYS[3 * streams + tonumber(ARGV[arg + 1])],
    epoch = tonumber(ARGV[arg + 2]), seq = tonumber(ARGV[arg + 3]), ttl = tonumber(ARGV[arg + 4]),
  }
end
-- Producer key -> its newest stamp { epoch, seq, answer } as this call leaves it.
local producers = {}
-- A stored stamp, or false for none (or a value this script did not write).
local function parseStamp(value)
  if type(value) ~= 'string' then return false end
  local e, q, answer = string.match(value, '^(%d+):(%d+):(.*)$')
  if not e then return false end
  return { epoch = tonumber(e), seq = tonumber(q), answer = answer }
end
local function isNewer(stamp, p)
  return stamp.epoch > p.epoch or (stamp.epoch == p.epoch and stamp.seq > p.seq)
end

-- Each event's verdict before anything of its stream is written: true to publish, or an
-- answer (a duplicate's, or \`!fenced:<epoch>\`); and how many are to publish. A stamped
-- event's answer is known here (its seq is the next one claimed), so a producer's first stamp
-- in the call is written and the one it replaces read in one step — the common case, a fresh
-- stamp, costs one command — and the old value is put back when it turns out newer.
local function judge(first, n, seq, epoch)
  local verdict, rewrite = {}, {}
  local fresh = 0
  for i = first, first + n - 1 do
    local stamp = stampOf[i]
    verdict[i] = true
    if stamp then
      local answer = '{"seq":' .. string.format('%d', seq + fresh + 1) .. ',"epoch":"' .. epoch .. '","id":"' .. ARGV[eventArgs + 2 * i] .. '","ts":' .. tsText .. '}'
      local value = string.format('%d:%d:', stamp.epoch, stamp.seq) .. answer
      local p = producers[stamp.key]
      local written = false
      if p == nil then
        -- pcall: a key of another type (not ours) is left alone and the stamp not checked;
        -- nothing in this loop may fail, as its writes come before the seqs are claimed.
        local old = redis.pcall('SET', stamp.key, value, 'EX', stamp.ttl, 'GET')
        p = parseStamp(old)
        written = type(old) ~= 'table' and (not p or isNewer(stamp, p))
        if p and not written then redis.call('SET', stamp.key, old, 'KEEPTTL') end
      end
      if p and not isNewer(stamp, p) then
        verdict[i] = stamp.epoch < p.epoch and ('!fenced:' .. p.epoch) or p.answer
      else
        -- Written above, or (an earlier stamp of this call came first) once at the end.
        if not written then rewrite[stamp.key] = { value = value, ttl = stamp.ttl } end
        p = { epoch = stamp.epoch, seq = stamp.seq, answer = answer }
      end
      producers[stamp.key] = p
    end
    if verdict[i] == true then fresh = fresh + 1 end
  end
  for key, last in pairs(rewrite) do redis.call('SET', key, last.value, 'EX', last.ttl) end
  return verdict, fresh
end

local reply = { ts }
-- Event i's answer goes at reply[answers + i], after ts and the streams' pairs.
local answers = 2 + 2 * streams

-- One stream's events first..first+n-1; returns its epoch and newest checkpoint's seq.
local function publish(s, first, n)
  local meta, history, checkpoint = KEYS[3 * s + 1], KEYS[3 * s + 2], KEYS[3 * s + 3]
  local arg = 7 + 3 * s
  -- A new stream's (or new epoch's) name is its first event's id: unique, one UUID per publish.
  local newEpoch = ARGV[eventArgs + 2 * first]
  local m = redis.call('HMGET', meta, 'epoch', 'seq', 'checkpointSeq', 'replid', 'touched')
  local epoch, seq, checkpointSeq, touched = m[1], tonumber(m[2]), tonumber(m[3] or '0'), m[5]
  if not epoch then
    -- A stream without meta starts a new history; leftovers of a lost one must not mix in.
    epoch, seq, checkpointSeq, touched = newEpoch, 0, 0, false
    redis.call('DEL', history, checkpoint)
    redis.call('HSET', meta, 'epoch', epoch, 'seq', 0, 'createdAt', ts, 'checkpointSeq', 0, 'replid', replid, 'base', 0)
  elseif m[4] ~= replid then
    if m[4] then
      -- Last written under another master or lifetime: writes after this head may be lost
      -- and their seqs must not be reused under the epoch that carried them.
      epoch = newEpoch
      redis.call('HSET', meta, 'epoch', epoch, 'replid', replid, 'base', seq)
    else
      redis.call('HSET', meta, 'replid', replid)
    end
  end

  -- A call with no stamped event (all but a worker's run events) skips the verdicts.
  local verdict, fresh = nil, n
  if stamped > 0 then
    verdict, fresh = judge(first, n, seq, epoch)
    if fresh == 0 then
      for i = first, first + n - 1 do reply[answers + i] = verdict[i] end
      return epoch, checkpointSeq
    end
  end
  -- The idle TTL is refreshed at a stream's first publish (a subscribe may have created meta
  -- with a provisional TTL, and the first XADD creates the history key) and then about once
  -- a minute, not on every event: \`touched\` is when it last was.
  local refresh = not touched or (idleTtl > 0 and ts - tonumber(touched) >= 1000 * math.min(60, idleTtl / 2))
  if refresh then
    redis.call('HSET', meta, 'seq', string.format('%d', seq + fresh), 'touched', tsText)
  else
    redis.call('HSET', meta, 'seq', string.format('%d', seq + fresh))
  end
  local from = seq

  local head, channel = ARGV[arg], ARGV[arg + 1]
  -- Epochs are ids ([A-Za-z0-9_.-]): quoted as they are, no JSON encoding needed.
  local mid = ',"epoch":"' .. epoch .. '","ts":' .. tsText .. ','
  for i = first, first + n - 1 do
    if not verdict or verdict[i] == true then
      local id = ARGV[eventArgs + 2 * i]
      seq = seq + 1
      -- Lua's \`..\` formats a number as a float (%.14g): once, as an integer, is cheaper.
      local seqText = string.format('%d', seq)
      local envelope = head .. seqText .. mid .. ARGV[eventArgs + 2 * i + 1]
      redis.call('XADD', history, seqText .. '-0', 'i', id, 't', tsText, 'e', envelope)
      redis.call('SPUBLISH', channel, envelope)
      reply[answers + i] = seq
    else
      reply[answers + i] = verdict[i]
    end
  end

  -- Retention never drops an event after the newest checkpoint: snapshots fold from there.
  -- Trims run when the seq passes a multiple of \`every\` (so up to that many events more than
  -- the limit stay until the next one): a call of one event each on many streams would
  -- otherwise pay an XTRIM per event. Count trims are approximate (\`MINID ~\`): only whole
  -- stream nodes go (at most 100 events, stream-node-max-entries), so up to a node more
  -- than the limit stays. Age trims are exact.
  if math.floor(seq / every) > math.floor(from / every) then
    local keepFrom = seq - maxEvents + 1
    local exact = '~'
    -- \`oldestTs\` in meta is a lower bound of every entry's ts: the oldest one's when last
    -- read (trims take from the front, and entries are appended at the clock's now). While
    -- even it is within the age limit there is nothing to read, so a stream kept by its count
    -- or younger than the limit reads its oldest entry about once per age limit, not at each
    -- trim (that XRANGE was ~2 % of the script's instructions over many streams).
    local recorded = maxAge > 0 and (tonumber(redis.call('HGET', meta, 'oldestTs') or '0') or 0)
    if recorded and ts - recorded > maxAge then
      local oldest = redis.call('XRANGE', history, '-', '+', 'COUNT', 1)
      -- The oldest entry left after this trim is no older than \`keptTs\`.
      local keptTs = oldest[1] and tonumber(oldest[1][2][4])
      local firstKeptTs = nil
      if keptTs and keptTs < ts - maxAge then
        local batch = redis.call('XRANGE', history, '-', '+', 'COUNT', 128)
        for _, entry in ipairs(batch) do
          local entryTs = tonumber(entry[2][4])
          if entryTs >= ts - maxAge then
            firstKeptTs = entryTs
            break
          end
          local entrySeq = tonumber(string.match(entry[1], '^(%d+)'))
          if entrySeq + 1 > keepFrom then
            keepFrom = entrySeq + 1
            exact = '='
          end
        end
      end
      -- An exact age trim that the checkpoint does not hold back keeps from that first young
      -- entry; anything else (approximate, held back, or none) from no older than before.
      if exact == '=' and firstKeptTs and keepFrom <= checkpointSeq + 1 then keptTs = firstKeptTs end
      if keptTs and keptTs ~= recorded then redis.call('HSET', meta, 'oldestTs', string.format('%d', keptTs)) end
    end
    if keepFrom > checkpointSeq + 1 then keepFrom = checkpointSeq + 1 end
    if keepFrom > 1 then
      redis.call('XTRIM', history, 'MINID', exact, keepFrom .. '-0')
    end
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
  return epoch, checkpointSeq
end

local first = 0
for s = 0, streams - 1 do
  local n = tonumber(ARGV[9 + 3 * s])
  local ok, epoch, checkpointSeq = pcall(publish, s, first, n)
  if ok then
    reply[2 + 2 * s], reply[3 + 2 * s] = epoch, checkpointSeq
  else
    local message = type(epoch) == 'table' and (epoch.err or 'ERR publish failed') or tostring(epoch)
    -- An error of the server's state rather than of this stream's keys (READONLY on a
    -- demoted master, OOM, …) fails the whole call, as the connection may act on it (a
    -- READONLY reply makes it reconnect to the new master). Redis raises those at a
    -- script's first write, so nothing was written yet. \`ERR\` and \`WRONGTYPE\` replies
    -- and Lua errors (\`user_script:<line>: …\`) belong to this stream only.
    if not (string.find(message, '^ERR') or string.find(message, '^WRONGTYPE') or string.find(message, '^user_script:')) then
      return redis.error_reply(message)
    end
    reply[2 + 2 * s], reply[3 + 2 * s] = false, message
    for i = first, first + n - 1 do reply[answers + i] = false end
  end
  first = first + n
end
return reply
`;
