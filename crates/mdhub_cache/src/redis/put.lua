-- mdhub RedisCache.put: apply a batch of events atomically.
--
-- KEYS[1]      the directory hash `{prefix}symbols`
-- KEYS[1 + i]  the latest hash `{prefix}latest:{SYMBOL}` of instrument i
-- ARGV, 8 per instrument i (a venue and a symbol): SYMBOL, VENUE, then for
--   the quote and then the trade: log offset, ts_received (nanoseconds),
--   value (the Positioned JSON); an empty offset means the batch has no
--   event of that kind.
--
-- Fields of a latest hash, per venue V: `quote:V` (the value), `quote_off:V`,
-- `quote_ts:V`, and the same three for `trade`. A slot is replaced only when
-- the new offset is strictly greater than the stored one, so replays and
-- racing writers never move a slot backwards; venues never touch each
-- other's fields. When an instrument's slots change, its directory entry
-- `SYMBOL@VENUE` is recomputed from both: the newer ts_received (the trade
-- on a tie). Per instrument this costs one HMGET and at most one HSET; the
-- directory is written with one HSET at the end. Returns the number of
-- slots replaced.

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
  local j = (i - 1) * 8
  local sym, v = ARGV[j + 1], ARGV[j + 2]
  local cur = redis.pcall('HMGET', key,
    'quote_off:' .. v, 'quote_ts:' .. v, 'trade_off:' .. v, 'trade_ts:' .. v)
  if cur['err'] then
    return redis.error_reply('MDHUB_CORRUPT ' .. sym .. ' ' .. cur['err'])
  end
  local qts, tts = cur[2], cur[4]
  local set = {}
  local off = ARGV[j + 3]
  if off ~= '' and (not cur[1] or ugt(off, cur[1])) then
    qts = ARGV[j + 4]
    set[#set + 1] = 'quote:' .. v; set[#set + 1] = ARGV[j + 5]
    set[#set + 1] = 'quote_off:' .. v; set[#set + 1] = off
    set[#set + 1] = 'quote_ts:' .. v; set[#set + 1] = qts
  end
  off = ARGV[j + 6]
  if off ~= '' and (not cur[3] or ugt(off, cur[3])) then
    tts = ARGV[j + 7]
    set[#set + 1] = 'trade:' .. v; set[#set + 1] = ARGV[j + 8]
    set[#set + 1] = 'trade_off:' .. v; set[#set + 1] = off
    set[#set + 1] = 'trade_ts:' .. v; set[#set + 1] = tts
  end
  if #set > 0 then
    redis.call('HSET', key, unpack(set))
    replaced = replaced + #set / 6
    local dts = tts
    if not tts or (qts and gt(qts, tts)) then dts = qts end
    dir[#dir + 1] = sym .. '@' .. v
    dir[#dir + 1] = '{"venue":"' .. v .. '","last_update":' .. dts .. '}'
  end
end
if #dir > 0 then
  redis.call('HSET', KEYS[1], unpack(dir))
end
return replaced
