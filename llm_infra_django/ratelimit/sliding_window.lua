-- Exact sliding window (log), one atomic call. Mirrors llm_infra_django.ratelimit.algorithms.SlidingWindowLog.
-- KEYS[1]: sorted set of admitted hits (score = µs, member = "<seq>:<cost>")
-- KEYS[2]: hash {n = admitted cost in the window, last = newest admitted µs, seq = member counter}
-- ARGV: limit, period_us, cost, now_us ('' = Redis server TIME), expiry margin ms
-- Returns "allowed(0/1) remaining reset_after_us retry_after_us now_us" (one bulk string, quick to parse).
-- Denied hits are never logged.
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
if now == nil then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end

local function cost_of(member)
  return tonumber(string.match(member, ':(%d+)$'))
end

local meta = redis.call('HMGET', KEYS[2], 'n', 'last', 'seq')
local total = tonumber(meta[1]) or 0
local last = tonumber(meta[2]) or 0
if now < last then
  now = last
end
local cutoff = now - period
if total > 0 then
  local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff)
  if #expired > 0 then
    for i = 1, #expired do
      total = total - cost_of(expired[i])
    end
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
    redis.call('HSET', KEYS[2], 'n', total)
  end
end

local allowed = 0
local retry = 0
if total + cost <= limit then
  allowed = 1
  local seq = (tonumber(meta[3]) or 0) + 1
  redis.call('ZADD', KEYS[1], now, string.format('%d:%d', seq, cost))
  total = total + cost
  last = now
  redis.call('HSET', KEYS[2], 'n', total, 'last', string.format('%d', now), 'seq', seq)
  local ttl = math.ceil(period / 1000) + tonumber(ARGV[5])
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
elseif cost > limit then
  retry = period
else
  -- Walk the oldest entries (in pages) until their expiry frees enough room for this cost.
  local need = total + cost - limit
  local freed = 0
  local start = 0
  while retry == 0 do
    local page = redis.call('ZRANGE', KEYS[1], start, start + 63, 'WITHSCORES')
    if #page == 0 then
      retry = period
    end
    for i = 1, #page, 2 do
      freed = freed + cost_of(page[i])
      if freed >= need then
        retry = tonumber(page[i + 1]) + period - now
        break
      end
    end
    start = start + 64
  end
end

local reset = 0
if total > 0 then
  reset = last + period - now
end
local remaining = limit - total
if remaining < 0 then
  remaining = 0
end
return string.format('%d %d %d %d %d', allowed, remaining, reset, retry, now)
