-- mdhub RedisCache.put: apply a batch of events atomically.
--
-- KEYS[1]      the directory hash `{prefix}symbols`
-- KEYS[1 + i]  the latest hash `{prefix}latest:{SYMBOL}` of symbol i
-- ARGV, 9 per symbol i: SYMBOL, then for the quote and then the trade:
--   log offset, ts_received (nanoseconds), venue, value (the Positioned
--   JSON); an empty offset means the batch has no event of that kind.
--
-- A slot is replaced only when the new offset is strictly greater than the
-- stored one, so replays and racing writers never move a slot backwards.
-- When a symbol's slots change, its directory entry is recomputed from both:
-- venue and ts_received of the newer by ts_received (the trade on a tie).
-- Per symbol this costs one HMGET and at most one HSET; the directory is
-- written with one HSET at the end. Returns the number of slots replaced.

-- Integers travel as decimal text: Lua numbers are doubles, exact only up to
-- 2^53, and nanosecond timestamps are ~2^60. Compare texts without leading
-- zeros by length, then in two exact halves. A stored text that is not an
-- integer loses to any valid one, so a damaged entry is overwritten.
local function ugt(a, b)
  if not string.find(a, '^%d+$') then return false end
  if not string.find(b, '^%d+$') then return true end
  if #a ~= #b then return #a > #b end
  if #a <= 15 then return tonumber(a) > tonumber(b) end
  local ha, hb = tonumber(string.sub(a, 1, -10)), tonumber(string.sub(b, 1, -10))
  if ha ~= hb then return ha > hb end
  return tonumber(string.sub(a, -9)) > tonumber(string.sub(b, -9))
end

-- a > b for signed decimal integer texts (ts_received may precede 1970).
local function gt(a, b)
  local na, nb = string.byte(a, 1) == 45, string.byte(b, 1) == 45
  if na ~= nb then return nb end
  if na then return ugt(string.sub(b, 2), string.sub(a, 2)) end
  return ugt(a, b)
end

local dir = {}
local replaced = 0
for i = 1, #KEYS - 1 do
  local key = KEYS[i + 1]
  local j = (i - 1) * 9
  local sym = ARGV[j + 1]
  local cur = redis.pcall('HMGET', key,
    'quote_off', 'quote_ts', 'quote_venue', 'trade_off', 'trade_ts', 'trade_venue')
  if cur['err'] then
    return redis.error_reply('MDHUB_CORRUPT ' .. sym .. ' ' .. cur['err'])
  end
  local qts, qv, tts, tv = cur[2], cur[3], cur[5], cur[6]
  local set = {}
  local off = ARGV[j + 2]
  if off ~= '' and (not cur[1] or ugt(off, cur[1])) then
    qts, qv = ARGV[j + 3], ARGV[j + 4]
    set[#set + 1] = 'quote'; set[#set + 1] = ARGV[j + 5]
    set[#set + 1] = 'quote_off'; set[#set + 1] = off
    set[#set + 1] = 'quote_ts'; set[#set + 1] = qts
    set[#set + 1] = 'quote_venue'; set[#set + 1] = qv
  end
  off = ARGV[j + 6]
  if off ~= '' and (not cur[4] or ugt(off, cur[4])) then
    tts, tv = ARGV[j + 7], ARGV[j + 8]
    set[#set + 1] = 'trade'; set[#set + 1] = ARGV[j + 9]
    set[#set + 1] = 'trade_off'; set[#set + 1] = off
    set[#set + 1] = 'trade_ts'; set[#set + 1] = tts
    set[#set + 1] = 'trade_venue'; set[#set + 1] = tv
  end
  if #set > 0 then
    redis.call('HSET', key, unpack(set))
    replaced = replaced + #set / 8
    local dts, dv = tts, tv
    if not (tts and tv) or (qts and qv and gt(qts, tts)) then dts, dv = qts, qv end
    dir[#dir + 1] = sym
    dir[#dir + 1] = '{"venue":"' .. dv .. '","last_update":' .. dts .. '}'
  end
end
if #dir > 0 then
  redis.call('HSET', KEYS[1], unpack(dir))
end
return replaced
