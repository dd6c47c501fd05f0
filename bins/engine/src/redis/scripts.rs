//! The Lua scripts: each runs atomically in Redis, so that numbering,
//! dedupe, trimming and publishing cannot interleave between nodes.
//!
//! They are loaded on every new connection (`SCRIPT LOAD`) and run with
//! `EVALSHA`; a `NOSCRIPT` (the script cache flushed under a live
//! connection) loads them again and runs the command once more (a script
//! refused with `NOSCRIPT` did not run).

use redis::Script;

/// Appends one entry. KEYS: log, meta, dedupe key. ARGV: the epoch the node
/// opened the room with, the body, the dedupe window in ms ("0": no client
/// message id), the stream's approximate length cap, the channel.
///
/// Returns `{code, seq, body}`: code 0 appended (seq is new); 1 a retry
/// (seq and body of the original, body "" if trimmed since); 2 the room's
/// log is not the one the node opened (meta gone or another epoch; body is
/// the epoch now, "" if none).
const APPEND: &str = r"
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if epoch ~= ARGV[1] then
  return {2, 0, epoch or ''}
end
if ARGV[3] ~= '0' then
  local seen = redis.call('GET', KEYS[3])
  if seen then
    local found = redis.call('XRANGE', KEYS[1], seen .. '-0', seen .. '-0')
    local body = ''
    if found[1] then body = found[1][2][2] end
    return {1, tonumber(seen), body}
  end
end
local seq = redis.call('HINCRBY', KEYS[2], 'last', 1)
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], seq .. '-0', 'm', ARGV[2])
if ARGV[3] ~= '0' then
  redis.call('SET', KEYS[3], seq, 'PX', ARGV[3])
end
redis.call('PUBLISH', ARGV[5], 'm' .. seq .. ' ' .. ARGV[2])
return {0, seq, ''}
";

/// Where a room's log stands, creating its meta (with the epoch given) if
/// it has none. KEYS: meta, log. ARGV: a new epoch.
///
/// Returns `{epoch, last, first}` as strings.
const OPEN: &str = r"
local m = redis.call('HMGET', KEYS[1], 'epoch', 'last')
local epoch, last = m[1], m[2] or '0'
if not epoch then
  epoch = ARGV[1]
  last = '0'
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'last', 0)
end
local first = tonumber(last) + 1
local f = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if f[1] then first = tonumber(string.match(f[1][1], '^(%d+)')) end
return {epoch, last, tostring(first)}
";

/// A user arrives in a room through a node. KEYS: presence, names, the
/// node's presence set. ARGV: user id, name, member, channel, node.
/// Announces the arrival (publishes, naming the node) only if the user was
/// on no node before. Returns the number of nodes the user is on now (0:
/// this node had them already).
const JOIN: &str = r"
if redis.call('SADD', KEYS[3], ARGV[3]) == 0 then return 0 end
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if n == 1 then redis.call('PUBLISH', ARGV[4], 'j' .. ARGV[5] .. '\n' .. ARGV[1] .. '\n' .. ARGV[2]) end
return n
";

/// A user leaves a room through a node. Same KEYS and ARGV as [`JOIN`].
/// Announces the departure only if the user is now on no node. Returns the
/// number of nodes the user is on now (-1: this node did not have them).
const LEAVE: &str = r"
if redis.call('SREM', KEYS[3], ARGV[3]) == 0 then return -1 end
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then
  local name = redis.call('HGET', KEYS[2], ARGV[1]) or ARGV[2]
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('PUBLISH', ARGV[4], 'l' .. ARGV[5] .. '\n' .. ARGV[1] .. '\n' .. name)
end
return n
";

/// Removes a dead node's presence, announcing each departure it causes,
/// once: whichever node runs it first finds the set, the others find it
/// gone. KEYS: the node's presence set, its liveness key, the node set.
/// ARGV: the node id. Returns -1 if the node is alive after all, else the
/// number of entries removed.
const REAP: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local members = redis.call('SMEMBERS', KEYS[1])
for _, m in ipairs(members) do
  local nl = string.find(m, '\n', 1, true)
  if nl then
    local room = string.sub(m, 1, nl - 1)
    local user = string.sub(m, nl + 1)
    local pres = 'chat:pres:' .. room
    local names = 'chat:pname:' .. room
    local n = redis.call('HINCRBY', pres, user, -1)
    if n <= 0 then
      local name = redis.call('HGET', names, user) or user
      redis.call('HDEL', pres, user)
      redis.call('HDEL', names, user)
      redis.call('PUBLISH', 'chat:ch:' .. room, 'l' .. ARGV[1] .. '\n' .. user .. '\n' .. name)
    end
  end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[3], ARGV[1])
return #members
";

/// The scripts, with their SHA-1s computed once.
pub struct Scripts {
    /// See [`APPEND`].
    pub append: Script,
    /// See [`OPEN`].
    pub open: Script,
    /// See [`JOIN`].
    pub join: Script,
    /// See [`LEAVE`].
    pub leave: Script,
    /// See [`REAP`].
    pub reap: Script,
}

impl Scripts {
    /// The scripts.
    pub fn new() -> Scripts {
        Scripts {
            append: Script::new(APPEND),
            open: Script::new(OPEN),
            join: Script::new(JOIN),
            leave: Script::new(LEAVE),
            reap: Script::new(REAP),
        }
    }

    /// Loads every script on `con` (`SCRIPT LOAD`).
    pub fn load(&self, con: &mut redis::Connection) -> redis::RedisResult<()> {
        for s in [
            &self.append,
            &self.open,
            &self.join,
            &self.leave,
            &self.reap,
        ] {
            s.prepare_invoke().load(con)?;
        }
        Ok(())
    }
}
