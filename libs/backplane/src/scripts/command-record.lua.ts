/**
 * Command idempotency records (PROTOCOL.md §3: the command id is the idempotency key).
 * A record is `{ state: "pending" | "done", fingerprint, owner, ack? }` JSON under
 * `commandKey(user, id)`. The first pod to claim it runs the command; copies wait for
 * `done` and answer with the stored ack.
 */

/**
 * command_settle — the owner finishes its claim: stores the ack (`done`) for the
 * idempotency TTL, or deletes the claim so a retry runs again (a retryable failure).
 * A claim that expired and was taken over by another pod is left alone.
 *
 * KEYS[1] record    ARGV[1] owner token    ARGV[2] done record JSON ('' = release)
 * ARGV[3] TTL seconds of a done record
 * Returns 1 when settled, 0 when the claim was no longer this owner's.
 */
export const COMMAND_SETTLE_LUA = `
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local record = cjson.decode(raw)
if record.owner ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
end
return 1
`;
