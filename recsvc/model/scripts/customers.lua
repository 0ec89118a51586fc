-- Stored histories of many customers from the version a reader believes is live, with
-- its stock epoch, what live order events added to each and the A/B test in force, in one
-- atomic step; the same shape as ``FETCH_SCRIPT``'s reply (``{live, false, {}, {}, test,
-- 0}`` when another version is live: the reader asks again). Keys: the pointer, the epoch,
-- the event histories, the A/B test and, on a single node, the customers hash, all
-- declared (``customers_args``).
local live = redis.call('GET', KEYS[1])
local test = redis.call('GET', KEYS[4])
if live ~= ARGV[1] then return {live or false, false, {}, {}, test, 0} end
local epoch = redis.call('GET', KEYS[2])
if #ARGV == 1 then return {live, epoch, {}, {}, test, 1} end
local stored = {}
if #KEYS > 4 then stored = redis.call('HMGET', KEYS[5], unpack(ARGV, 2)) end
return {live, epoch, stored, redis.call('HMGET', KEYS[3], unpack(ARGV, 2)), test, 1}
