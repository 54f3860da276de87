-- Push a live reservation's deadline (and its parallel slot's) one slot lifetime ahead of now, so that only the
-- reservations of requests nobody serves any more expire and are reconciled.
-- KEYS: 1 reservation (hash), 2 reservation index, 3 parallel slots. ARGV: 1 request id, 2 slot lifetime ms.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'deadline', deadline)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 86400000)
redis.call('ZADD', KEYS[2], 'XX', deadline, ARGV[1])
if redis.call('ZADD', KEYS[3], 'XX', 'CH', deadline, ARGV[1]) == 1 then
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[2]) + 60000)
end
return 1
