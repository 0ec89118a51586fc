-- Publishes a completely written version as the candidate of an A/B test, beside the live
-- one (which stays live): same lock and manifest checks as the switch.
-- KEYS: lock, live, candidate, experiment, meta of the new version, its manifest keys;
-- ARGV: token, new version, the experiment's JSON, the manifest's specs.
-- Run after guards.lua (lock_lost, incomplete), prepended by recsvc.model.scripts.
local refused = lock_lost('switch')
if refused then return refused end
if not redis.call('GET', KEYS[2]) then
  return redis.error_reply('NOLIVE no live version to test a candidate against')
end
refused = incomplete('new version', 5, 4)
if refused then return refused end
local old = redis.call('GET', KEYS[3])
redis.call('SET', KEYS[3], ARGV[2])
redis.call('SET', KEYS[4], ARGV[3])
return old
