-- fender rate limit: one decision over every limit of one request, in one round trip.
--
-- Mirrors fender/ratelimit/gcra.py and sliding.py exactly (integer microseconds; every
-- value stays below 2**53 so Lua doubles hold it exactly). All limits must admit the
-- request or nothing is written.
--
-- KEYS[i]       the storage key of limit i
-- ARGV[1]       now in microseconds, or "" to use the server clock (TIME)
-- ARGV[2]       cost
-- ARGV[3]       "g" (GCRA) or "s" (sliding-window counter)
-- ARGV[1+3i]    GCRA: emission interval   sliding: limit (requests per window)
-- ARGV[2+3i]    GCRA: tolerance           sliding: window, in the limit's time unit
-- ARGV[3+3i]    GCRA: 0 (unused)          sliding: the time unit in microseconds
--
-- Reply: {now, allowed (1 or 0), state of each key as read before this request}
--   GCRA: the TAT (0 when absent); sliding: window index, current count, previous count.
-- The caller recomputes the headers from these with the Python module.

local now
if ARGV[1] == '' then
  -- The server clock: one clock for every app instance. Fine under effect replication
  -- (the default since Redis 5): replicas receive the writes, not the script.
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local cost = tonumber(ARGV[2])
local mode = ARGV[3]
local n = #KEYS

-- Floor division that stays exact where a / b rounds up to the next integer.
local function fdiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end

-- Integers as decimal text: redis.call would otherwise format numbers with %.14g.
local function int(x)
  return string.format('%.0f', x)
end

local reply = {now, 1}
local allowed = true
local values = {}
local ttls = {}

if mode == 'g' then
  for i = 1, n do
    local emission = tonumber(ARGV[1 + 3 * i])
    local tolerance = tonumber(ARGV[2 + 3 * i])
    local stored = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
    reply[#reply + 1] = stored
    local tat = stored
    if tat < now then
      tat = now
    end
    local new_tat = tat + cost * emission
    if new_tat - tolerance > now then
      allowed = false
    end
    values[i] = int(new_tat)
    ttls[i] = new_tat - now
  end
else
  for i = 1, n do
    local limit = tonumber(ARGV[1 + 3 * i])
    local window = tonumber(ARGV[2 + 3 * i])
    local unit = tonumber(ARGV[3 + 3 * i])
    local t = fdiv(now, unit)
    local index = fdiv(t, window)
    local raw = redis.call('GET', KEYS[i])
    local w, c, p = 0, 0, 0
    if raw then
      local a, b, d = string.match(raw, '^(%d+) (%d+) (%d+)$')
      if a then
        w, c, p = tonumber(a), tonumber(b), tonumber(d)
      end
    end
    reply[#reply + 1] = w
    reply[#reply + 1] = c
    reply[#reply + 1] = p
    local current, previous = 0, 0
    if w == index then
      current, previous = c, p
    elseif w == index - 1 then
      previous = c
    end
    local elapsed = t - index * window
    if previous * (window - elapsed) + (current + cost) * window > limit * window then
      allowed = false
    end
    current = current + cost
    values[i] = int(index) .. ' ' .. int(current) .. ' ' .. int(previous)
    -- Back from the limit's unit to microseconds, as gcra.py's _sliding_view does.
    if current > 0 then
      ttls[i] = (t + 2 * window - elapsed) * unit - now
    elseif previous > 0 then
      ttls[i] = (t + window - elapsed) * unit - now
    else
      ttls[i] = 0
    end
  end
end

if allowed then
  for i = 1, n do
    -- The key lives until it would be full again; a state that is already full needs no key.
    local ttl_ms = math.ceil(ttls[i] / 1000)
    if ttl_ms > 0 then
      redis.call('SET', KEYS[i], values[i], 'PX', int(ttl_ms))
    end
  end
else
  reply[2] = 0
end
return reply
