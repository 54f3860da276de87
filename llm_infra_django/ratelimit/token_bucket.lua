-- Token bucket, one atomic call. Mirrors llm_infra_django.ratelimit.algorithms.TokenBucket operation by operation.
-- KEYS[1]: hash {t = tokens (%.17g, exact round trip), ts = last update in µs}
-- ARGV: limit, period_us, cost, now_us ('' = Redis server TIME, so every host shares one clock), expiry margin ms
-- Returns "allowed(0/1) remaining reset_after_us retry_after_us now_us": one bulk string parses much faster
-- client-side than an array of five integers. A denial writes nothing.
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
if now == nil then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end

local function verdict(allowed, tokens, reset, retry)
  return string.format('%d %d %d %d %d', allowed, math.floor(tokens), reset, retry, now)
end

local state = redis.call('HMGET', KEYS[1], 't', 'ts')
local stored = tonumber(state[1])
local updated = tonumber(state[2])

local function refilled(elapsed)
  if elapsed >= period or stored == nil then
    return limit
  end
  return math.min(limit, stored + elapsed * limit / period)
end

local tokens = limit
if updated ~= nil then
  if now < updated then
    now = updated
  end
  tokens = refilled(now - updated)
end

if cost <= tokens then
  tokens = tokens - cost
  local reset = math.ceil((limit - tokens) * period / limit)
  redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'ts', string.format('%d', now))
  redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000) + tonumber(ARGV[5]))
  return verdict(1, tokens, reset, 0)
end
local reset = math.ceil((limit - tokens) * period / limit)
if cost > limit then
  return verdict(0, tokens, reset, period)
end
local retry = math.ceil((cost - tokens) * period / limit)
-- Float rounding may leave the bucket a hair short after `retry`; the promise is that it then admits.
if refilled(now - updated + retry) < cost then
  retry = retry + 1
end
return verdict(0, tokens, reset, retry)
