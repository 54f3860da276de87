-- Shared by the admission and settlement scripts (prepended to each): `integer(value, low, high)` is the number
-- `value` holds when it is an integer in [low, high] (exact in Lua's doubles below 2^53), else nil.
local function integer(value, low, high)
  local n = tonumber(value)
  if n == nil or n ~= n or n < low or n > high or n ~= math.floor(n) then return nil end
  return n
end

