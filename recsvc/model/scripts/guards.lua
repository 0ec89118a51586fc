-- What every script that moves a pointer checks first, and the refusal it returns:
-- - ``lock_lost(what)``: the caller (KEYS[1] lock, ARGV[1] token) no longer holds the lock;
-- - ``incomplete(name, k, a)``: the version whose metadata is KEYS[k] is not whole: no
-- metadata, or a manifest key (KEYS[k + 1..], specs ARGV[a..]: "hash:120",
-- "string:4096", "string:*" for any non-empty size) missing or not the size written.
local function lock_lost(what)
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return redis.error_reply('LOCKLOST publisher lock lost before the ' .. what)
  end
end
local function incomplete(name, k, a)
  if redis.call('EXISTS', KEYS[k]) == 0 then
    return redis.error_reply('INCOMPLETE ' .. name .. ' has no metadata')
  end
  local problems = {}
  for i = k + 1, #KEYS do
    local kind, size = string.match(ARGV[a + i - k - 1], '^(%a+):(.+)$')
    local found = redis.call('TYPE', KEYS[i])['ok']
    local got = 0
    if found == 'hash' then got = redis.call('HLEN', KEYS[i])
    elseif found == 'string' then got = redis.call('STRLEN', KEYS[i]) end
    if found == 'none' then
      table.insert(problems, KEYS[i] .. ' is missing')
    elseif found ~= kind then
      table.insert(problems, KEYS[i] .. ' is a ' .. found .. ', not a ' .. kind)
    elseif (size == '*' and got == 0) or (size ~= '*' and got ~= tonumber(size)) then
      table.insert(problems, KEYS[i] .. ' has size ' .. got .. ', the manifest says ' .. size)
    end
  end
  if #problems > 0 then
    return redis.error_reply('INCOMPLETE ' .. table.concat(problems, '; '))
  end
end
