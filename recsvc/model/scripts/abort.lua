-- Ends an A/B test without changing the live version: the candidate stops being served.
-- KEYS: lock, candidate, experiment, ended experiments stream; ARGV: token, the ended
-- experiment's JSON, the stream's cap.
-- Run after guards.lua (lock_lost, incomplete), prepended by recsvc.model.scripts.
local refused = lock_lost('abort')
if refused then return refused end
local cand = redis.call('GET', KEYS[2])
if not cand then return redis.error_reply('NOCANDIDATE no A/B test is running') end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'experiment', ARGV[2])
return cand
