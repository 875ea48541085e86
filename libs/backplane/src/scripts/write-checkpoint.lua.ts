/**
 * write_checkpoint — stores a stream's state folded up to `seq`, if it is newer than the
 * stored one and of the same epoch, and releases the compaction lock. From then on,
 * retention may trim events up to `seq`.
 *
 * KEYS[1] meta        KEYS[2] checkpoint        KEYS[3] compactLock
 * ARGV[1] epoch       ARGV[2] seq               ARGV[3] checkpoint JSON { seq, epoch, state }
 *
 * Returns 1 when written, 0 when the stream moved on (another epoch, or a newer checkpoint)
 * or the checkpoint is past the head: folded from events a failover lost (read on the old
 * master, written on a new one that has not published since).
 */
export const WRITE_CHECKPOINT_LUA = `
local meta, checkpoint, lock = KEYS[1], KEYS[2], KEYS[3]
local seq = tonumber(ARGV[2])
redis.call('DEL', lock)
if redis.call('HGET', meta, 'epoch') ~= ARGV[1] then return 0 end
local m = redis.call('HMGET', meta, 'checkpointSeq', 'seq')
if tonumber(m[1] or '0') >= seq or tonumber(m[2] or '0') < seq then return 0 end
redis.call('SET', checkpoint, ARGV[3])
redis.call('HSET', meta, 'checkpointSeq', seq)
local ttl = redis.call('PTTL', meta)
if ttl > 0 then redis.call('PEXPIRE', checkpoint, ttl) end
return 1
`;
