-- Makes a completely written version live, only while the caller still holds the lock
-- (a trainer whose lock expired must not switch) and only if every key its manifest lists
-- is there with the size it was written with.
-- KEYS: lock, live, previous, meta of the new version, its manifest keys;
-- ARGV: token, new version, the manifest's specs.
-- Run after guards.lua (lock_lost, incomplete), prepended by recsvc.model.scripts.
local refused = lock_lost('switch') or incomplete('new version', 4, 3)
if refused then return refused end
local old = redis.call('GET', KEYS[2])
if old then redis.call('SET', KEYS[3], old) end
redis.call('SET', KEYS[2], ARGV[2])
return old
