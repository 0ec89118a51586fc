-- One live order event, once: the order id's marker (set with an expiry, or a duplicate:
-- ``{0, 0, 0}``), the event on the capped stream, what it credits to the answers it came
-- from (attribution: ``[[sales field, amount], ...]`` added to the total and the day's
-- counts; ``[field, amount, true]`` to the day's only), and its items ahead of the
-- customer's event history (distinct, newest first, at most ARGV[5]). Returns ``{1, events
-- ever added, events kept}``. KEYS: marker, stream, event histories, added counter, sales
-- total, the day's sales; ARGV: marker seconds, stream cap, customer, day, history cap,
-- the event's JSON, the credit JSON, the day key's expiry in seconds, item ids.
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return {0, 0, 0} end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[6])
local added = redis.call('INCR', KEYS[4])
local credit = cjson.decode(ARGV[7])
for _, c in ipairs(credit) do
  if not c[3] then redis.call('HINCRBYFLOAT', KEYS[5], c[1], c[2]) end
  redis.call('HINCRBYFLOAT', KEYS[6], c[1], c[2])
end
if #credit > 0 then redis.call('EXPIRE', KEYS[6], ARGV[8]) end
local items, days, seen = {}, {}, {}
for i = 9, #ARGV do
  if not seen[ARGV[i]] then
    seen[ARGV[i]] = true
    items[#items + 1] = ARGV[i]
    days[#days + 1] = tonumber(ARGV[4])
  end
end
local old = redis.call('HGET', KEYS[3], ARGV[3])
if old then
  local before = cjson.decode(old)
  for i, item in ipairs(before[1]) do
    if not seen[item] and #items < tonumber(ARGV[5]) then
      seen[item] = true
      items[#items + 1] = item
      days[#days + 1] = before[2][i]
    end
  end
end
redis.call('HSET', KEYS[3], ARGV[3], cjson.encode({items, days}))
return {1, added, redis.call('XLEN', KEYS[2])}
