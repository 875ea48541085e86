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
