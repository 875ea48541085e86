/**
 * resolve_pending — the first answer to a pending decision (approval, plan) wins.
 *
 * KEYS[1] the decision's record (HASH with a `status` field)
 * Returns the status before the call: `pending` means this call resolved it.
 */
export const RESOLVE_PENDING_LUA = `
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'pending' then redis.call('HSET', KEYS[1], 'status', 'resolved') end
return status
`;
