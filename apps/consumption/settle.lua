-- Settle a reservation with the actual usage: charge or refund the difference, free the parallel slot.
-- Idempotent: a reservation settled (or reconciled) once is gone, and settling again does nothing.
--
-- KEYS: 1 reservation (hash), 2 reservation index, 3 parallel slots, 4 tpm window, 5 budget day, 6 budget month,
--       7 quota requests, 8 quota tokens, 9 quota spend
-- ARGV: 1 request id, 2 actual tokens, 3 actual cost (micro-USD), 4 counted requests (1, or 0 to refund it)
local reservation = redis.call('HMGET', KEYS[1], 'tokens', 'cost', 'charged', 'tpm')
if not reservation[1] then return 0 end
local token_delta = tonumber(ARGV[2]) - tonumber(reservation[1])
local cost_delta = tonumber(ARGV[3]) - tonumber(reservation[2])
local request_delta = tonumber(ARGV[4]) - 1

local function adjust(key, delta)
  if delta ~= 0 and redis.call('EXISTS', key) == 1 then redis.call('INCRBY', key, delta) end
end

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
