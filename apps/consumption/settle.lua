-- Settle a reservation with the actual usage: charge or refund the difference, free the parallel slot.
-- Idempotent: a reservation settled (or reconciled) once is gone, and settling again does nothing — unless the
-- caller knows the usage was never counted (ARGV 5 = 1: the proxy settling its own request, whose reservation Redis
-- lost in a restart or the reconciler refunded): then the whole usage is charged to the counters that exist (the
-- others are seeded from the database, which will hold the request's record).
--
-- KEYS: 1 reservation (hash), 2 reservation index, 3 parallel slots, 4 tpm window, 5 budget day, 6 budget month,
--       7 quota requests, 8 quota tokens, 9 quota spend
-- ARGV: 1 request id, 2 actual tokens, 3 actual cost (micro-USD), 4 counted requests (1, or 0 to refund it),
--       5 charge the usage when the reservation is gone (1) or do nothing then (0, absent), 6 the time (ms) after
--       which the caller no longer waits for this answer (absent or -1: none): later, nothing is applied (the caller
--       gave up, wrote the record itself, and settles again without charging), 7 the largest amount one call may
--       reserve, 8 the largest value a counter may hold
-- All or nothing: arguments out of range refuse the call (-4) before anything changes; a counter never goes below
-- zero; a stored counter that is not an integer in range is dropped (admission rebuilds it from the database).
if ARGV[6] and tonumber(ARGV[6]) > 0 then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[6]) then return -3 end
end

local max_amount = tonumber(ARGV[7])
local max_counter = tonumber(ARGV[8])
local tokens = integer(ARGV[2], 0, max_amount)
local cost = integer(ARGV[3], 0, max_amount)
local requests = integer(ARGV[4], 0, 1)
if tokens == nil or cost == nil or requests == nil then return -4 end

local function adjust(key, delta)
  if delta == 0 then return end
  local stored = redis.call('GET', key)
  if not stored then return end
  local value = integer(stored, 0, max_counter)
  if value == nil then
    redis.call('DEL', key)
    return
  end
  redis.call('SET', key, math.min(math.max(value + delta, 0), max_counter), 'KEEPTTL')
end

local reservation = redis.call('HMGET', KEYS[1], 'tokens', 'cost', 'charged', 'tpm')
if not reservation[1] then
  if ARGV[5] ~= '1' then return 0 end
  adjust(KEYS[4], tokens)
  for index = 5, 9 do
    local amount = cost
    if index == 7 then amount = requests elseif index == 8 then amount = tokens end
    adjust(KEYS[index], amount)
  end
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 2
end
local token_delta = tokens - (integer(reservation[1], 0, max_amount) or 0)
local cost_delta = cost - (integer(reservation[2], 0, max_amount) or 0)
local request_delta = requests - 1

if reservation[4] == '1' then adjust(KEYS[4], token_delta) end
local index = {budget_day = 5, budget_month = 6, api_requests = 7, tokens = 8, spend_usd = 9}
local delta = {budget_day = cost_delta, budget_month = cost_delta, api_requests = request_delta,
               tokens = token_delta, spend_usd = cost_delta}
for name in string.gmatch(reservation[3] or '', '[^,]+') do
  adjust(KEYS[index[name]], delta[name])
end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1])
return 1
