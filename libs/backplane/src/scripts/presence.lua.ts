/**
 * Presence (PROTOCOL.md §8): who watches a stream, across pods. Counts are kept per pod so
 * that a pod that dies can be taken out: each live pod beats for the streams it holds, and
 * every presence script first prunes pods whose beat is older than the cut-off.
 *
 * KEYS[1] presenceUsers   HASH userId → connections across pods
 * KEYS[2] presenceConns   HASH `<podId>|<userId>` → connections on that pod
 * KEYS[3] presencePods    ZSET podId → last beat (ms)
 *
 * Common ARGV: [1] stream name, [2] live channel, [3] how old a pod's last beat may be (ms)
 * before it counts as dead, [4] idle TTL seconds of the presence keys. Scripts add their
 * own ARGV after those. Time is Redis' clock, so pods with skewed clocks agree.
 *
 * A change of membership (a user's first connection joined, last one left) is SPUBLISHed
 * on the stream's live channel as `{ kind: "presence", change: { stream, joined | left } }`.
 */
const PRELUDE = `
local users, conns, pods = KEYS[1], KEYS[2], KEYS[3]
local stream, channel, ttl = ARGV[1], ARGV[2], tonumber(ARGV[4])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local staleBefore = now - tonumber(ARGV[3])

local function announce(field, list)
  if #list == 0 then return end
  local change = { stream = stream }
  change[field] = list
  redis.call('SPUBLISH', channel, cjson.encode({ kind = 'presence', change = change }))
end

-- Takes out the counts of pods that stopped beating; returns users whose last connection went.
local function prune()
  local stale = redis.call('ZRANGEBYSCORE', pods, '-inf', '(' .. staleBefore)
  if #stale == 0 then return {} end
  local isStale = {}
  for _, pod in ipairs(stale) do isStale[pod] = true end
  local left = {}
  local flat = redis.call('HGETALL', conns)
  for i = 1, #flat, 2 do
    local field, count = flat[i], tonumber(flat[i + 1])
    local sep = string.find(field, '|', 1, true)
    local pod, user = string.sub(field, 1, sep - 1), string.sub(field, sep + 1)
    if isStale[pod] then
      redis.call('HDEL', conns, field)
      if redis.call('HINCRBY', users, user, -count) <= 0 then
        redis.call('HDEL', users, user)
        left[#left + 1] = user
      end
    end
  end
  redis.call('ZREM', pods, unpack(stale))
  return left
end

local function keepAlive()
  if ttl > 0 then
    redis.call('EXPIRE', users, ttl)
    redis.call('EXPIRE', conns, ttl)
    redis.call('EXPIRE', pods, ttl)
  end
end
`;

/**
 * ARGV[5] podId, then pairs userId, change: the joins and leaves a pod gathered for the
 * stream since its last write (a change of +3 is three connections joining). A leave never
 * takes a user's count on the pod below zero. Returns 1.
 */
export const PRESENCE_APPLY_LUA = `${PRELUDE}
local pod = ARGV[5]
announce('left', prune())
local joinedUsers, leftUsers = {}, {}
local joins = false
for i = 6, #ARGV, 2 do
  local user, delta = ARGV[i], tonumber(ARGV[i + 1])
  local field = pod .. '|' .. user
  local here = tonumber(redis.call('HGET', conns, field) or '0')
  if delta < -here then delta = -here end
  if delta > 0 then joins = true end
  if delta ~= 0 then
    if here + delta <= 0 then redis.call('HDEL', conns, field) else redis.call('HSET', conns, field, here + delta) end
    local total = redis.call('HINCRBY', users, user, delta)
    if total <= 0 then
      redis.call('HDEL', users, user)
      if total - delta > 0 then leftUsers[#leftUsers + 1] = user end
    elseif total - delta <= 0 then
      joinedUsers[#joinedUsers + 1] = user
    end
  end
end
-- A pod's counts can only be pruned once it is listed; its beats keep it there.
if joins then redis.call('ZADD', pods, now, pod) end
announce('joined', joinedUsers)
announce('left', leftUsers)
keepAlive()
return 1
`;

/**
 * ARGV[5] podId, then pairs userId, connections: this pod's whole membership of the stream.
 * The beat is authoritative for its pod: it refreshes the pod's liveness and corrects any
 * drift (a lost join or leave, Redis data loss), announcing the changes it makes.
 */
export const PRESENCE_BEAT_LUA = `${PRELUDE}
local pod = ARGV[5]
local leftUsers = prune()
local joinedUsers = {}
local prefix = pod .. '|'
local current = {}
local flat = redis.call('HGETALL', conns)
for i = 1, #flat, 2 do
  if string.sub(flat[i], 1, #prefix) == prefix then current[string.sub(flat[i], #prefix + 1)] = tonumber(flat[i + 1]) end
end
local desired = {}
for i = 6, #ARGV, 2 do desired[ARGV[i]] = tonumber(ARGV[i + 1]) end

for user, count in pairs(desired) do
  local old = current[user] or 0
  if count ~= old then
    local delta = count - old
    redis.call('HSET', conns, prefix .. user, count)
    local total = redis.call('HINCRBY', users, user, delta)
    if total - delta <= 0 and total > 0 then joinedUsers[#joinedUsers + 1] = user end
  end
end
for user, old in pairs(current) do
  if not desired[user] then
    redis.call('HDEL', conns, prefix .. user)
    if redis.call('HINCRBY', users, user, -old) <= 0 then
      redis.call('HDEL', users, user)
      leftUsers[#leftUsers + 1] = user
    end
  end
end
if next(desired) then redis.call('ZADD', pods, now, pod) else redis.call('ZREM', pods, pod) end
announce('joined', joinedUsers)
announce('left', leftUsers)
keepAlive()
return 1
`;

/** Returns the flat HGETALL of users → connections, after pruning dead pods. */
export const PRESENCE_LIST_LUA = `${PRELUDE}
announce('left', prune())
return redis.call('HGETALL', users)
`;
