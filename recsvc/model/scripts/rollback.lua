-- Swaps live and previous, so a rollback can itself be undone by rolling back again; only
-- to a previous version that is still complete (an evicting Redis may have taken a key).
-- KEYS: lock, live, previous, meta of previous, its manifest keys;
-- ARGV: token, the previous version as the caller read it, the manifest's specs.
-- Run after guards.lua (lock_lost, incomplete), prepended by recsvc.model.scripts.
local refused = lock_lost('rollback')
if refused then return refused end
local prev = redis.call('GET', KEYS[3])
if not prev then return redis.error_reply('NOPREVIOUS no previous version to roll back to') end
if prev ~= ARGV[2] then
  return redis.error_reply('CHANGED the previous version changed; try again')
end
refused = incomplete('previous version ' .. prev, 4, 3)
if refused then return refused end
local live = redis.call('GET', KEYS[2])
redis.call('SET', KEYS[2], prev)
if live then redis.call('SET', KEYS[3], live) else redis.call('DEL', KEYS[3]) end
return prev
