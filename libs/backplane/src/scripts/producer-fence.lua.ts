/**
 * producer_fence — a producer's new epoch claims its stream before it publishes anything, so
 * an older epoch still running (a worker whose stalled job was given to another) is refused
 * from then on, even if the new epoch ends up publishing nothing stamped. See publish.lua.ts
 * for the fence's value `<epoch>:<seq>:<answer>`.
 *
 * KEYS[1] producer key    ARGV[1] epoch    ARGV[2] TTL of the key, seconds
 *
 * Returns the epoch the stream holds for the producer afterwards: ARGV[1], or a newer one.
 */
export const PRODUCER_FENCE_LUA = `
local value = redis.call('GET', KEYS[1])
local held = value and tonumber(string.match(value, '^(%d+):'))
local epoch = tonumber(ARGV[1])
if held and held >= epoch then return held end
redis.call('SET', KEYS[1], string.format('%d:0:', epoch), 'EX', tonumber(ARGV[2]))
return epoch
`;
