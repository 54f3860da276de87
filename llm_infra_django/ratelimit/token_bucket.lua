-- Token bucket, one atomic call. Mirrors llm_infra_django.ratelimit.algorithms.TokenBucket operation by operation.
-- KEYS[1]: hash {t = tokens (%.17g, exact round trip), ts = last update in µs}
-- ARGV: limit, period_us, cost, now_us ('' = Redis server TIME, so every host shares one clock), expiry margin ms
-- Returns {allowed 0/1, remaining, reset_after_us, retry_after_us, now_us}. A denial writes nothing.
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
if now == nil then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end

local tokens = limit
local state = redis.call('HMGET', KEYS[1], 't', 'ts')
local updated = tonumber(state[2])
if updated ~= nil then
  if now < updated then
    now = updated
  end
  local elapsed = now - updated
  if elapsed < period then
    tokens = math.min(limit, tonumber(state[1]) + elapsed * limit / period)
  end
end

if cost <= tokens then
  tokens = tokens - cost
  local reset = math.ceil((limit - tokens) * period / limit)
  redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'ts', string.format('%d', now))
  redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000) + tonumber(ARGV[5]))
  return {1, math.floor(tokens), reset, 0, now}
end
local retry = period
if cost <= limit then
  retry = math.ceil((cost - tokens) * period / limit)
end
return {0, math.floor(tokens), math.ceil((limit - tokens) * period / limit), retry, now}
