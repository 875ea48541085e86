/**
 * transition — moves one field of a record to a new value only from one of the allowed
 * current values: the first of two racing changes wins (an approval answered twice, a
 * cancel racing a completion).
 *
 * KEYS[1] the record (HASH)
 * ARGV[1] field    ARGV[2] new value    ARGV[3..] allowed current values
 * Returns the previous value when the transition happened, else false (nil).
 */
export const TRANSITION_LUA = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return false end
for i = 3, #ARGV do
  if current == ARGV[i] then
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
    return current
  end
end
return false
`;
