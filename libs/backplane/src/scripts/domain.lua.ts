/**
 * transition — moves one field of a record to a new value only from one of the allowed
 * current values: the first of two racing changes wins (an approval answered twice, a
 * cancel racing a completion). The winner's token is kept beside the field, so when the
 * same job runs again (a retry after its event failed to publish) it is recognised as the
 * winner and can finish its work.
 *
 * KEYS[1] the record (HASH)
 * ARGV[1] field    ARGV[2] new value    ARGV[3] owner token ('' for none)
 * ARGV[4..] allowed current values
 * Returns the previous value when the transition happened (or had happened for this owner),
 * else false (nil).
 */
export const TRANSITION_LUA = `
local field, value, owner = ARGV[1], ARGV[2], ARGV[3]
local current = redis.call('HGET', KEYS[1], field)
if not current then return false end
for i = 4, #ARGV do
  if current == ARGV[i] then
    redis.call('HSET', KEYS[1], field, value)
    if owner ~= '' then redis.call('HSET', KEYS[1], field .. ':by', owner) end
    return current
  end
end
if owner ~= '' and current == value and redis.call('HGET', KEYS[1], field .. ':by') == owner then return current end
return false
`;

/**
 * decide — answers a pending approval or plan once: the first answer wins and is stored with
 * it, so whichever worker resumes the run reads the same answer. An answer after the
 * decision's `expiresAt` is refused (`expired`) unless the caller is the expiry itself
 * (`now` = 0). The owner token makes a retry of the winning answer succeed again.
 *
 * KEYS[1] the decision (HASH: status, expiresAt?, answer, status:by)
 * ARGV[1] owner token    ARGV[2] answer JSON    ARGV[3] now (ms; 0 = ignore expiry)
 * Returns 'resolved' | 'missing' | 'expired' | 'conflict'.
 */
export const DECIDE_LUA = `
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status == 'pending' then
  local expiresAt = tonumber(redis.call('HGET', KEYS[1], 'expiresAt') or '0') or 0
  local now = tonumber(ARGV[3])
  if now > 0 and expiresAt > 0 and now >= expiresAt then return 'expired' end
  redis.call('HSET', KEYS[1], 'status', 'resolved', 'status:by', ARGV[1], 'answer', ARGV[2])
  return 'resolved'
end
if redis.call('HGET', KEYS[1], 'status:by') == ARGV[1] then return 'resolved' end
return 'conflict'
`;

/**
 * admit_session_run — puts a run in its session's line (PROTOCOL.md §9 `chat.onBusy`). With
 * `reject` a session that has unfinished runs refuses it; otherwise it joins the end. A run
 * already in line (a retried command) is admitted again without moving.
 *
 * KEYS[1] the session's run line (LIST, oldest first)
 * ARGV[1] run id    ARGV[2] 'reject' | 'enqueue' | 'interrupt'    ARGV[3] TTL seconds
 * Returns { 'admitted' | 'busy', ...the run ids ahead of it }.
 */
export const ADMIT_SESSION_RUN_LUA = `
local line = redis.call('LRANGE', KEYS[1], 0, -1)
local ahead = {}
for _, id in ipairs(line) do
  if id == ARGV[1] then
    table.insert(ahead, 1, 'admitted')
    return ahead
  end
  table.insert(ahead, id)
end
if ARGV[2] == 'reject' and #line > 0 then
  table.insert(ahead, 1, 'busy')
  return ahead
end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
table.insert(ahead, 1, 'admitted')
return ahead
`;
