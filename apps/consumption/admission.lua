-- Admission of one proxied request, atomically: revocation, key rpm/tpm/parallel, key budgets, tenant quotas,
-- then (only when everything passes) every counter is charged and a reservation is recorded.
-- All keys share the tenant's hash tag, so the script is valid on Redis Cluster.
--
-- KEYS: 1 revoked flag, 2 tenant suspended flag, 3 rpm log (zset), 4 tpm window, 5 parallel slots (zset),
--       6 key budget day, 7 key budget month, 8 quota requests, 9 quota tokens, 10 quota spend,
--       11 reservation (hash), 12 reservation index (zset), 13 throttle bucket (hash), 14 pending charges (hash),
--       15 what a prepaid tenant was billed, ever (kept within its credits)
-- ARGV: 1 request id, 2 rpm limit, 3 tpm limit, 4 estimated tokens, 5 max parallel, 6 slot lifetime ms,
--       7 budget day limit, 8 budget month limit, 9 estimated cost (10^-10 USD),
--       10/11/12 requests quota limit/action/seed, 13/14/15 tokens quota, 16/17/18 spend quota,
--       19 budget day seed, 20 budget month seed, 21 throttle rate per second, 22 quota ttl s, 23 tpm window ms,
--       24 key id (recorded with the reservation for reconciliation), 25 the ledger entry to write should the
--       request's process die (may be empty), 26 the time (ms) after which the caller no longer waits for this
--       answer (-1: none): later, nothing is applied (a call that reached a frozen Redis, run when it woke up),
--       27 the largest amount one call may reserve, 28 the largest value a counter may hold, 29 the request ids
--       (space-separated) the seeds' database snapshot holds, 30/31 the prepaid tenant's credits (-1: postpaid) and
--       the seed of what it was billed
-- Limits are -1 when absent; seeds are -1 when unknown (the caller reads the database and calls again). A seed is
-- read from the database in one snapshot, after which charges settled while the counter was missing (KEYS 14, see
-- settle.lua) may still be on their way to it: those whose request the snapshot does not hold are added to the seed.
-- Budgets and quotas (limits, seeds, estimates, counters) are whole numbers of their unit — money in 10^-10 USD —
-- added and compared exactly up to ARGV 28; the other arguments are small integers. An argument out of range refuses
-- the call before anything changes ({-4, which}); a stored counter that is not such an integer is treated as missing,
-- i.e. rebuilt from the database.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[26] and tonumber(ARGV[26]) > 0 and now > tonumber(ARGV[26]) then return {-3, 'stale'} end

local max_amount = big(ARGV[27])
local max_counter = big(ARGV[28])
-- a limit or seed: false for -1 (none, unknown), nil when out of range
local function optional(value)
  if value == '-1' then return false end
  local n = big(value)
  if n and big_cmp(n, max_counter) <= 0 then return n end
  return nil
end
local function amount(value)
  local n = big(value)
  if n and big_cmp(n, max_amount) <= 0 then return n end
  return nil
end
for _, i in ipairs({2, 3, 5}) do
  if integer(ARGV[i], -1, 2^50) == nil then return {-4, 'argument ' .. i} end
end
for _, i in ipairs({6, 22, 23}) do
  if integer(ARGV[i], 0, 2^50) == nil then return {-4, 'argument ' .. i} end
end
for _, i in ipairs({7, 8, 10, 12, 13, 15, 16, 18, 19, 20, 30, 31}) do
  if optional(ARGV[i]) == nil then return {-4, 'argument ' .. i} end
end
local est_tokens, est_cost = amount(ARGV[4]), amount(ARGV[9])
if est_tokens == nil then return {-4, 'argument 4'} end
if est_cost == nil then return {-4, 'argument 9'} end

if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 'revoked'} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {0, 'suspended'} end

local request_id = ARGV[1]
local rpm_limit = tonumber(ARGV[2])
local tpm_limit = tonumber(ARGV[3])
local max_parallel = tonumber(ARGV[5])
local slot_ms = tonumber(ARGV[6])
local window_ms = tonumber(ARGV[23])

-- Counters that may need seeding from the database: {key index, limit, action, seed, amount, name}
local metered = {
  {6, optional(ARGV[7]), 'block', optional(ARGV[19]), est_cost, 'budget_day'},
  {7, optional(ARGV[8]), 'block', optional(ARGV[20]), est_cost, 'budget_month'},
  {8, optional(ARGV[10]), ARGV[11], optional(ARGV[12]), {0, 1}, 'api_requests'},
  {9, optional(ARGV[13]), ARGV[14], optional(ARGV[15]), est_tokens, 'tokens'},
  {10, optional(ARGV[16]), ARGV[17], optional(ARGV[18]), est_cost, 'spend_usd'},
  {15, optional(ARGV[30]), 'block', optional(ARGV[31]), est_cost, 'balance'},
}

local seeded_ids = {}
for id in string.gmatch(ARGV[29] or '', '%S+') do seeded_ids[id] = true end
local pending = nil
local pending_used = {}
-- a seed plus the pending charges of its counter that the seed's snapshot does not hold
local function seeded(key, seed)
  pending = pending or redis.call('HGETALL', KEYS[14])
  local prefix = key .. '|'
  local value = seed
  for j = 1, #pending, 2 do
    if string.sub(pending[j], 1, #prefix) == prefix then
      local charge = amount(pending[j + 1])
      if charge and not seeded_ids[string.sub(pending[j], #prefix + 1)] then value = big_add(value, charge) end
      pending_used[#pending_used + 1] = pending[j]
    end
  end
  return value
end

local missing = {}
local current = {}
for i, m in ipairs(metered) do
  if m[2] then
    local value = optional(redis.call('GET', KEYS[m[1]]) or '-1')
    if value then
      current[i] = value
    elseif m[4] then
      current[i] = seeded(KEYS[m[1]], m[4])
    else
      missing[#missing + 1] = m[6]
    end
  end
end
if #missing > 0 then return {-2, 'seed', unpack(missing)} end
-- A seed installed reads the pending charges: those of counters this tenant does not keep (no limit) go with them.
if pending then
  for _, m in ipairs(metered) do
    if not m[2] then
      local prefix = KEYS[m[1]] .. '|'
      for j = 1, #pending, 2 do
        if string.sub(pending[j], 1, #prefix) == prefix then pending_used[#pending_used + 1] = pending[j] end
      end
    end
  end
end

-- Requests per minute: exact sliding log; refused requests leave no trace.
local rpm_count = 0
if rpm_limit >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - 60000)
  rpm_count = redis.call('ZCARD', KEYS[3])
  if rpm_count >= rpm_limit then
    local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    local retry = 1000
    if oldest[2] then retry = tonumber(oldest[2]) + 60000 - now end
    return {0, 'rpm', math.max(retry, 1), rpm_limit}
  end
end

-- Tokens per minute: the window of the current minute, charged with the estimate and settled later.
local tpm_used = 0
local tpm_estimate = tonumber(ARGV[4])
if tpm_limit >= 0 then
  tpm_used = integer(redis.call('GET', KEYS[4]) or '0', 0, 2^50) or 0
  if tpm_used + tpm_estimate > tpm_limit then
    return {0, 'tpm', window_ms - (now % window_ms), tpm_limit}
  end
end

if max_parallel >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  if redis.call('ZCARD', KEYS[5]) >= max_parallel then
    return {0, 'parallel', 1000, max_parallel}
  end
end

-- Budgets and quotas.
local throttled = 0
local flags = {}
local after = {}
for i, m in ipairs(metered) do
  if m[2] then
    after[i] = big_add(current[i], m[5])
    local refusal = {0, m[6], 0, big_text(m[2]), big_text(current[i])}
    if big_cmp(after[i], max_counter) > 0 then return refusal end
    if big_cmp(after[i], m[2]) > 0 then
      if m[3] == 'block' then
        return refusal
      elseif m[3] == 'throttle' then
        throttled = 1
      elseif big_cmp(current[i], m[2]) <= 0 then
        flags[#flags + 1] = 'alert:' .. m[6]
      end
    end
    -- the soft limit: current < 80 % of the limit <= after
    local soft = big_times(m[2], 4)
    if big_cmp(big_times(current[i], 5), soft) < 0 and big_cmp(soft, big_times(after[i], 5)) <= 0 then
      flags[#flags + 1] = 'soft:' .. m[6]
    end
  end
end

-- A quota past its THROTTLE limit lets requests through a token bucket (capacity 1) at the reduced rate.
if throttled == 1 then
  local rate = tonumber(ARGV[21])
  local state = redis.call('HMGET', KEYS[13], 'tokens', 'ts')
  local tokens = tonumber(state[1] or '1')
  local ts = tonumber(state[2] or tostring(now))
  tokens = math.min(1, tokens + (now - ts) * rate / 1000)
  if tokens < 1 then
    return {0, 'throttle', math.ceil((1 - tokens) * 1000 / rate), 0}
  end
  redis.call('HSET', KEYS[13], 'tokens', tokens - 1, 'ts', now)
  redis.call('PEXPIRE', KEYS[13], math.ceil(2000 / rate))
end

-- Everything passed: charge.
local ttl = tonumber(ARGV[22])
if rpm_limit >= 0 then
  redis.call('ZADD', KEYS[3], now, request_id)
  redis.call('PEXPIRE', KEYS[3], 61000)
end
if tpm_limit >= 0 then
  redis.call('SET', KEYS[4], tpm_used + tpm_estimate)
  redis.call('PEXPIRE', KEYS[4], window_ms * 2)
end
if max_parallel >= 0 then
  redis.call('ZADD', KEYS[5], now + slot_ms, request_id)
  redis.call('PEXPIRE', KEYS[5], slot_ms + 60000)
end
local charged = {}
for i, m in ipairs(metered) do
  if m[2] then
    redis.call('SET', KEYS[m[1]], big_text(after[i]), 'EX', ttl)
    charged[#charged + 1] = m[6]
  end
end
if #pending_used > 0 then redis.call('HDEL', KEYS[14], unpack(pending_used)) end
redis.call('HSET', KEYS[11], 'tokens', ARGV[4], 'cost', ARGV[9], 'deadline', now + slot_ms,
  'charged', table.concat(charged, ','), 'tpm', tpm_limit >= 0 and 1 or 0, 'key', ARGV[24], 'at', now)
if ARGV[25] and ARGV[25] ~= '' then redis.call('HSET', KEYS[11], 'rec', ARGV[25]) end
redis.call('PEXPIRE', KEYS[11], slot_ms + 86400000)
redis.call('ZADD', KEYS[12], now + slot_ms, request_id)

local remaining_rpm = -1
if rpm_limit >= 0 then remaining_rpm = rpm_limit - rpm_count - 1 end
local remaining_tpm = -1
if tpm_limit >= 0 then remaining_tpm = tpm_limit - tpm_used - tpm_estimate end
return {1, 'ok', remaining_rpm, remaining_tpm, window_ms - (now % window_ms), table.concat(flags, ',')}
