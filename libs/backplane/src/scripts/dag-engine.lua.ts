/**
 * The DAG engine's orchestration steps (see apps/worker/src/dags/dag-engine.ts). Every step
 * of one execution runs here, atomically, on the execution's keys (one hash tag): a node
 * finishing decrements its successors' pending-input counts, and the step that brings a count
 * to 0 — exactly one, even when two predecessors finish at once on two workers — makes the
 * node ready. The same step hands out ready nodes up to the execution's concurrency limit
 * while it runs (none while paused), sweeps what has not started when it is cancelling or
 * failing and no node runs any more, and ends the execution once, when no node is left.
 *
 * Common keys:
 * KEYS[1] the execution record (HASH status, gate:<node>; `failing` is the engine's own
 *         status between a failure that ends the execution and the end)
 * KEYS[2] the engine state (HASH): n:<node> status (pending, ready, scheduled, running,
 *         waiting, completed, failed, skipped, cancelled), p:<node> inputs still awaited,
 *         s:<node> successors (comma-separated; ids cannot hold commas), running (nodes with
 *         a job), left (nodes not yet settled), limit, spent, budget ('' for none), failed,
 *         done, swept, o:<token> (a step's answer, so a retried step answers the same)
 * KEYS[3] the ready line (LIST of nodes waiting for a slot)
 *
 * A step answers JSON: { ready, skipped, cancelled, dispatch (nodes to enqueue now),
 * finish?, spent?, budget?, failing?, budgetExceeded?, stale? }. Lua's JSON encodes an empty list as
 * {}: readers take anything that is not an array as empty.
 */
const COMMON = `
local rec, eng, line = KEYS[1], KEYS[2], KEYS[3]
local res = { ready = {}, skipped = {}, cancelled = {}, dispatch = {} }
local function push(list, v) list[#list + 1] = v end
local function status() return redis.call('HGET', rec, 'status') end
local function stopping() local st = status(); return st == 'cancelling' or st == 'failing' end
local function split(csv)
  local t = {}
  if csv then for x in string.gmatch(csv, '[^,]+') do push(t, x) end end
  return t
end
local function settleOne(id, st)
  redis.call('HSET', eng, 'n:' .. id, st)
  redis.call('HINCRBY', eng, 'left', -1)
end
local function sweep()
  -- Not before init: an execution cancelled while queued is swept when it is laid out.
  if not stopping() or redis.call('HEXISTS', eng, 'left') == 0 then return end
  -- Not while a node still runs (its abort is on the way): the step that settles the last one
  -- sweeps and ends the execution, so its events publish the sweep before execution_complete.
  -- A sweep in an earlier step raced the ending step's publish (a node left 'pending' after
  -- execution_complete on a dashboard).
  if tonumber(redis.call('HGET', eng, 'running') or '0') > 0 then return end
  if redis.call('HSETNX', eng, 'swept', '1') == 0 then return end
  local all = redis.call('HGETALL', eng)
  for i = 1, #all, 2 do
    local f, v = all[i], all[i + 1]
    if string.sub(f, 1, 2) == 'n:' and (v == 'pending' or v == 'ready' or v == 'waiting') then
      settleOne(string.sub(f, 3), 'cancelled')
      push(res.cancelled, string.sub(f, 3))
    end
  end
  redis.call('DEL', line)
end
local function dispatch()
  if status() ~= 'running' then return end
  local limit = tonumber(redis.call('HGET', eng, 'limit'))
  local running = tonumber(redis.call('HGET', eng, 'running') or '0')
  while running < limit do
    local id = redis.call('LPOP', line)
    if not id then break end
    if redis.call('HGET', eng, 'n:' .. id) == 'ready' then
      redis.call('HSET', eng, 'n:' .. id, 'scheduled')
      running = running + 1
      push(res.dispatch, id)
    end
  end
  redis.call('HSET', eng, 'running', running)
end
local function finish()
  if tonumber(redis.call('HGET', eng, 'left') or '1') > 0 then return end
  if redis.call('HSETNX', eng, 'done', '1') == 0 then return end
  local st, final = status(), 'completed'
  if st == 'cancelling' then final = 'cancelled'
  elseif st == 'failing' or redis.call('HGET', eng, 'failed') == '1' then final = 'failed' end
  redis.call('HSET', rec, 'status', final)
  res.finish = final
end
local function answer(token)
  local encoded = cjson.encode(res)
  redis.call('HSET', eng, 'o:' .. token, encoded)
  return encoded
end
local function replay(token) return redis.call('HGET', eng, 'o:' .. token) end
`;

/**
 * init — lays out a new execution: every node pending with its input count and successors,
 * the roots ready; moves the record from queued to running and hands out the first nodes.
 * An execution cancelled while queued ends at once, every node cancelled.
 * ARGV[1] token   ARGV[2] concurrency limit   ARGV[3] budget ('' none)   ARGV[4] TTL s
 * ARGV[5..] per node: id, successors CSV, number of predecessors
 */
export const DAG_INIT_LUA = `${COMMON}
local done = replay(ARGV[1])
if done then return done end
for i = 5, #ARGV, 3 do
  redis.call('HSET', eng, 'n:' .. ARGV[i], 'pending', 'p:' .. ARGV[i], ARGV[i + 2], 's:' .. ARGV[i], ARGV[i + 1])
end
redis.call('HSET', eng, 'left', (#ARGV - 4) / 3, 'running', 0, 'limit', ARGV[2], 'spent', 0, 'budget', ARGV[3])
if status() == 'queued' then redis.call('HSET', rec, 'status', 'running') end
if not stopping() then
  for i = 5, #ARGV, 3 do
    if ARGV[i + 2] == '0' then
      redis.call('HSET', eng, 'n:' .. ARGV[i], 'ready')
      redis.call('RPUSH', line, ARGV[i])
      push(res.ready, ARGV[i])
    end
  end
end
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], tonumber(ARGV[4])) end
sweep()
dispatch()
finish()
return answer(ARGV[1])
`;

/**
 * start — a node job begins: 'run' when its node is handed out (or was running on a worker
 * that died), 'abort' when the execution is cancelling or failing, 'held' when it was handed
 * out but the execution has been paused since (it keeps its slot and starts after the
 * resume: a pause lets running nodes finish and starts none), 'stale' when the node has
 * settled already (a duplicate job).
 * ARGV[1] node
 */
export const DAG_START_LUA = `${COMMON}
local cur = redis.call('HGET', eng, 'n:' .. ARGV[1])
if cur ~= 'scheduled' and cur ~= 'running' then return 'stale' end
if stopping() then return 'abort' end
if cur == 'scheduled' and status() == 'paused' then return 'held' end
redis.call('HSET', eng, 'n:' .. ARGV[1], 'running')
return 'run'
`;

/**
 * settle — a node ends: completed (its successors' counts drop; those at 0 become ready),
 * failed (skip_dependents: every pending descendant is skipped; fail_execution: the
 * execution turns failing) or cancelled. Its cost is added to the spend; passing the budget
 * turns the execution failing.
 * ARGV[1] token   ARGV[2] node   ARGV[3] completed | failed | cancelled
 * ARGV[4] fail_execution | skip_dependents   ARGV[5] cost (USD)
 */
export const DAG_SETTLE_LUA = `${COMMON}
local done = replay(ARGV[1])
if done then return done end
local node, outcome = ARGV[2], ARGV[3]
local cur = redis.call('HGET', eng, 'n:' .. node)
if cur ~= 'scheduled' and cur ~= 'running' and cur ~= 'waiting' then
  return cjson.encode({ stale = true })
end
settleOne(node, outcome)
if cur == 'scheduled' or cur == 'running' then redis.call('HINCRBY', eng, 'running', -1) end
local function failExecution()
  local st = status()
  if st == 'running' or st == 'paused' then
    redis.call('HSET', rec, 'status', 'failing')
    res.failing = true
  end
end
local cost = tonumber(ARGV[5])
if cost > 0 then
  res.spent = tonumber(redis.call('HINCRBYFLOAT', eng, 'spent', cost))
  local budget = redis.call('HGET', eng, 'budget')
  if budget ~= '' then res.budget = tonumber(budget) end
  if budget ~= '' and res.spent > tonumber(budget) then
    redis.call('HSET', eng, 'failed', '1')
    res.budgetExceeded = true
    failExecution()
  end
end
if outcome == 'completed' and not stopping() then
  for _, s in ipairs(split(redis.call('HGET', eng, 's:' .. node))) do
    if redis.call('HINCRBY', eng, 'p:' .. s, -1) == 0 and redis.call('HGET', eng, 'n:' .. s) == 'pending' then
      redis.call('HSET', eng, 'n:' .. s, 'ready')
      redis.call('RPUSH', line, s)
      push(res.ready, s)
    end
  end
elseif outcome == 'failed' then
  redis.call('HSET', eng, 'failed', '1')
  if ARGV[4] == 'skip_dependents' then
    local queue = split(redis.call('HGET', eng, 's:' .. node))
    local i = 1
    while i <= #queue do
      local x = queue[i]
      if redis.call('HGET', eng, 'n:' .. x) == 'pending' then
        settleOne(x, 'skipped')
        push(res.skipped, x)
        for _, s in ipairs(split(redis.call('HGET', eng, 's:' .. x))) do push(queue, s) end
      end
      i = i + 1
    end
  else
    failExecution()
  end
end
sweep()
dispatch()
finish()
return answer(ARGV[1])
`;

/**
 * park — a human gate starts waiting: its node leaves the running count (a waiting gate holds
 * no slot) and the freed slot is handed out; in a stopping execution with nothing else
 * running, it sweeps and ends the execution.
 * ARGV[1] token   ARGV[2] node
 */
export const DAG_PARK_LUA = `${COMMON}
local done = replay(ARGV[1])
if done then return done end
local cur = redis.call('HGET', eng, 'n:' .. ARGV[2])
if cur ~= 'scheduled' and cur ~= 'running' then return cjson.encode({ stale = true }) end
redis.call('HSET', eng, 'n:' .. ARGV[2], 'waiting')
redis.call('HINCRBY', eng, 'running', -1)
-- Parked after the execution began to stop: if it was the last node running, this step
-- sweeps (the gate too) and ends the execution, as a settle would.
sweep()
dispatch()
finish()
return answer(ARGV[1])
`;

/**
 * step — after a steering change (resume, cancel): sweeps what has not started if the
 * execution is stopping, hands out ready nodes if it runs, ends it if nothing is left.
 * ARGV[1] token
 */
export const DAG_STEP_LUA = `${COMMON}
local done = replay(ARGV[1])
if done then return done end
sweep()
dispatch()
finish()
return answer(ARGV[1])
`;

/**
 * expand — a running map node adds its item nodes: each waits for the map node and feeds
 * the map node's successors, which now wait for every item too. Refused (stale) once the
 * execution stops or the map node is no longer running.
 * ARGV[1] token   ARGV[2] map node   ARGV[3..] item node ids
 */
export const DAG_EXPAND_LUA = `${COMMON}
local done = replay(ARGV[1])
if done then return done end
local map = ARGV[2]
if redis.call('HGET', eng, 'n:' .. map) ~= 'running' or stopping() then return cjson.encode({ stale = true }) end
local succ = redis.call('HGET', eng, 's:' .. map) or ''
local items = {}
for i = 3, #ARGV do
  redis.call('HSET', eng, 'n:' .. ARGV[i], 'pending', 'p:' .. ARGV[i], 1, 's:' .. ARGV[i], succ)
  push(items, ARGV[i])
end
for _, s in ipairs(split(succ)) do redis.call('HINCRBY', eng, 'p:' .. s, #items) end
redis.call('HINCRBY', eng, 'left', #items)
local out = table.concat(items, ',')
if succ ~= '' then out = (out ~= '' and (out .. ',') or '') .. succ end
redis.call('HSET', eng, 's:' .. map, out)
return answer(ARGV[1])
`;
