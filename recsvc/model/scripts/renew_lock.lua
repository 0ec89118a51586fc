-- KEYS[1] lock; ARGV: token, expiry in ms. Extends the lock only for its holder.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
