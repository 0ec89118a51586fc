-- Ends an A/B test by making its candidate live (the live one becomes previous, the
-- rollback target), only if the candidate is still complete.
-- KEYS: lock, live, previous, candidate, experiment, ended experiments stream, meta of the
-- candidate, its manifest keys; ARGV: token, the candidate as the caller read it, the
-- ended experiment's JSON, the stream's cap, the manifest's specs.
-- Run after guards.lua (lock_lost, incomplete), prepended by recsvc.model.scripts.
local refused = lock_lost('promotion')
if refused then return refused end
local cand = redis.call('GET', KEYS[4])
if not cand then return redis.error_reply('NOCANDIDATE no A/B test is running') end
if cand ~= ARGV[2] then return redis.error_reply('CHANGED the candidate changed; try again') end
refused = incomplete('candidate ' .. cand, 7, 5)
if refused then return refused end
local old = redis.call('GET', KEYS[2])
if old then redis.call('SET', KEYS[3], old) end
redis.call('SET', KEYS[2], cand)
redis.call('DEL', KEYS[4], KEYS[5])
redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[4], '*', 'experiment', ARGV[3])
return old
