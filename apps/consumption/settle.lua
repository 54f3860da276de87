-- Settle a reservation with the actual usage: charge or refund the difference, free the parallel slot.
-- Idempotent: a reservation settled (or reconciled) once is gone, and settling again does nothing — unless the
-- caller knows the usage was never counted (ARGV 5 = 1: the proxy settling its own request, whose reservation Redis
-- lost in a restart or the reconciler refunded): then the whole usage is charged to the counters that exist (the
-- others are seeded from the database, which will hold the request's record: the charge is kept as pending, and the
-- admission that seeds the counter adds it unless the seed's database snapshot already held the record).
--
-- KEYS: 1 reservation (hash), 2 reservation index, 3 parallel slots, 4 tpm window, 5 budget day, 6 budget month,
--       7 quota requests, 8 quota tokens, 9 quota spend, 10 pending charges (hash), 11 what a prepaid tenant was
--       billed, ever
-- ARGV: 1 request id, 2 actual tokens, 3 actual cost (10^-10 USD), 4 counted requests (1, or 0 to refund it),
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

local max_amount = big(ARGV[7])
local max_counter = big(ARGV[8])
local function amount(value)
  local n = big(value)
  if n and big_cmp(n, max_amount) <= 0 then return n end
  return nil
end
local tokens = amount(ARGV[2])
local cost = amount(ARGV[3])
local requests = amount(ARGV[4])
if tokens == nil or cost == nil or requests == nil or big_cmp(requests, {0, 1}) > 0 then return -4 end
local NOTHING = {0, 0}

-- counter + plus - minus, exactly, kept within [0, max_counter]
local function adjust(key, plus, minus)
  if big_cmp(plus, minus) == 0 then return end
  local stored = redis.call('GET', key)
  if not stored then return end
  local value = big(stored)
  if value == nil or big_cmp(value, max_counter) > 0 then
    redis.call('DEL', key)
    return
  end
  value = big_sub(big_add(value, plus), minus)
  if big_cmp(value, max_counter) > 0 then value = max_counter end
  redis.call('SET', key, big_text(value), 'KEEPTTL')
end

local reservation = redis.call('HMGET', KEYS[1], 'tokens', 'cost', 'charged', 'tpm')
if not reservation[1] then
  if ARGV[5] ~= '1' then return 0 end
  adjust(KEYS[4], tokens, NOTHING)
  for _, index in ipairs({5, 6, 7, 8, 9, 11}) do
    local charge = cost
    if index == 7 then charge = requests elseif index == 8 then charge = tokens end
    if redis.call('EXISTS', KEYS[index]) == 1 then
      adjust(KEYS[index], charge, NOTHING)
    elseif big_cmp(charge, NOTHING) > 0 then
      redis.call('HSET', KEYS[10], KEYS[index] .. '|' .. ARGV[1], big_text(charge))
      redis.call('PEXPIRE', KEYS[10], 86400000)
    end
  end
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 2
end
local reserved_tokens = amount(reservation[1]) or NOTHING
local reserved_cost = amount(reservation[2]) or NOTHING

if reservation[4] == '1' then adjust(KEYS[4], tokens, reserved_tokens) end
local index = {budget_day = 5, budget_month = 6, api_requests = 7, tokens = 8, spend_usd = 9, balance = 11}
local actual = {budget_day = cost, budget_month = cost, api_requests = requests, tokens = tokens, spend_usd = cost,
                balance = cost}
local reserved = {budget_day = reserved_cost, budget_month = reserved_cost, api_requests = {0, 1},
                  tokens = reserved_tokens, spend_usd = reserved_cost, balance = reserved_cost}
for name in string.gmatch(reservation[3] or '', '[^,]+') do
  adjust(KEYS[index[name]], actual[name], reserved[name])
end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1])
return 1
