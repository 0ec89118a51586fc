-- Reads the version pointer, the A/B test in force (so a request needs no read of its own
-- to learn its arm), the stock epoch and the lists of the requested items of the version
-- the caller believes is live, in one round trip and one atomic step: the lists come from
-- the version returned, even while a trainer switches the pointer or deletes an old
-- version. Every key is declared (a cluster runs the same script on the pointer's slot,
-- with the lists read from their buckets beside it).
-- KEYS: pointer, A/B test, stock epoch of ARGV[1], [complements, [alternatives]] of
-- ARGV[1]; ARGV[1] the believed version, ARGV[2..] item ids.
-- Returns {live, epoch, complements, alternatives, test, 1}, or {live or false, false, {},
-- {}, test, 0} when another version is live (the caller asks again for that one).
local live = redis.call('GET', KEYS[1])
local test = redis.call('GET', KEYS[2])
if live ~= ARGV[1] then return {live or false, false, {}, {}, test, 0} end
local epoch = redis.call('GET', KEYS[3])
local comp, alts = {}, {}
if #ARGV > 1 and #KEYS > 3 then
  comp = redis.call('HMGET', KEYS[4], unpack(ARGV, 2))
  if #KEYS > 4 then alts = redis.call('HMGET', KEYS[5], unpack(ARGV, 2)) end
end
return {live, epoch, comp, alts, test, 1}
