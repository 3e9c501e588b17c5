-- fender rate limit, lease mode (GCRA): take a lease of several requests in one round trip
-- while the key is far from its limit, else decide this one request exactly.
--
-- Same arithmetic as ratelimit.lua (integer microseconds, below 2**53). A lease is granted
-- only when every key keeps at least `reserve` requests after it, so that near the limit
-- every instance asks per request. The leased requests are counted here, before they are
-- spent: Redis never hands out more than the limit holds.
--
-- KEYS[i]       the storage key of limit i
-- ARGV[1]       now in microseconds, or "" to use the server clock (TIME)
-- ARGV[2]       cost of this request
-- ARGV[3]       lease size (requests taken at once, >= cost)
-- ARGV[4]       reserve (requests that must stay after a lease)
-- ARGV[3+2i]    emission interval of limit i
-- ARGV[4+2i]    tolerance of limit i
--
-- Reply: {now, taken (lease size, cost, or 0 when rejected), TAT of each key before}

local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local cost = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local reserve = tonumber(ARGV[4])
local n = #KEYS
local reply = {now, 0}
local tats = {}
local leasable, allowed = true, true

for i = 1, n do
  local emission = tonumber(ARGV[3 + 2 * i])
  local tolerance = tonumber(ARGV[4 + 2 * i])
  local stored = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  reply[#reply + 1] = stored
  local tat = stored
  if tat < now then
    tat = now
  end
  tats[i] = tat
  if tat + (lease + reserve) * emission - tolerance > now then
    leasable = false
  end
  if tat + cost * emission - tolerance > now then
    allowed = false
  end
end

local take = 0
if leasable then
  take = lease
elseif allowed then
  take = cost
end
if take > 0 then
  for i = 1, n do
    local new_tat = tats[i] + take * tonumber(ARGV[3 + 2 * i])
    local ttl_ms = math.ceil((new_tat - now) / 1000)
    if ttl_ms > 0 then
      redis.call('SET', KEYS[i], string.format('%.0f', new_tat), 'PX', string.format('%.0f', ttl_ms))
    end
  end
end
reply[2] = take
return reply
