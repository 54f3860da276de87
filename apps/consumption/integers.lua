-- Shared by the admission and settlement scripts (prepended to each). Every amount and counter is a non-negative
-- integer, held exactly: `integer(value, low, high)` reads a small one (Lua's doubles are exact below 2^53);
-- `big(value)` reads a metered counter or amount of up to 18 decimal digits (money counts in 10^-10 USD, so a
-- counter may pass 2^53) as {high, low}, low < 10^9, which the `big_*` functions add, compare and print exactly.
local function integer(value, low, high)
  local n = tonumber(value)
  if n == nil or n ~= n or n < low or n > high or n ~= math.floor(n) then return nil end
  return n
end

local BIG_BASE = 1000000000
local function big(value)
  if type(value) ~= 'string' or #value > 18 or not string.match(value, '^%d+$') then return nil end
  if #value <= 9 then return {0, tonumber(value)} end
  return {tonumber(string.sub(value, 1, -10)), tonumber(string.sub(value, -9))}
end

local function big_cmp(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] and -1 or 1 end
  if a[2] ~= b[2] then return a[2] < b[2] and -1 or 1 end
  return 0
end

local function big_add(a, b)
  local high, low = a[1] + b[1], a[2] + b[2]
  if low >= BIG_BASE then return {high + 1, low - BIG_BASE} end
  return {high, low}
end

-- a - b, or 0 when b is larger (a counter never goes below zero)
local function big_sub(a, b)
  if big_cmp(a, b) <= 0 then return {0, 0} end
  local high, low = a[1] - b[1], a[2] - b[2]
  if low < 0 then return {high - 1, low + BIG_BASE} end
  return {high, low}
end

-- a × k for a small whole k
local function big_times(a, k)
  local low = a[2] * k
  return {a[1] * k + math.floor(low / BIG_BASE), low % BIG_BASE}
end

local function big_text(a)
  if a[1] == 0 then return string.format('%d', a[2]) end
  return string.format('%d%09d', a[1], a[2])
end

