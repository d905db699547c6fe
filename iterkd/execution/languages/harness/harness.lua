-- iterkd's Lua test harness, run in the sandbox beside the untrusted solution.lua.
-- It writes JSON-lines records to fd 3 (the protocol of iterkd/execution/_harness.py): the value
-- each test call returns, never a verdict. The expected values stay in the supervisor.
-- Everything the harness uses is captured in locals before the program runs, so a program that
-- replaces globals (string.format, pairs, io...) cannot change how values are reported.
local spec = dofile("tests.lua") -- { entry = "f", cases = { function(candidate) ... end, ... } }
local out = assert(io.open("/dev/fd/3", "w"))
local write, flush, read_all = out.write, out.flush, io.open
local type, tostring, pcall, load, next, rawget, rawlen = type, tostring, pcall, load, next, rawget, rawlen
local mtype, huge, concat = math.type, math.huge, table.concat
local format, gsub, byte, find, sub = string.format, string.gsub, string.byte, string.find, string.sub
local MAX_DEPTH, MAX_TEXT = 100, 1000

local function emit(line)
  write(out, line, "\n")
  flush(out)
end

local function escape_char(c)
  if c == '"' then return '\\"' end
  if c == "\\" then return "\\\\" end
  return format("\\u%04x", byte(c))
end

local function jstring(s)
  return '"' .. gsub(s, '[%c"\\]', escape_char) .. '"'
end

local function text(value)
  local ok, s = pcall(tostring, value)
  if not ok or type(s) ~= "string" then return "<unprintable>" end
  return sub(s, 1, MAX_TEXT)
end

local encode

local function encode_table(t, depth)
  local count, max_int = 0, 0
  for k in next, t do
    count = count + 1
    if mtype(k) == "integer" and k > 0 then
      if k > max_int then max_int = k end
    else
      max_int = -1
    end
  end
  local parts = {}
  if count == max_int or count == 0 then -- a sequence 1..n: a list
    for i = 1, count do parts[i] = encode(rawget(t, i), depth + 1) end
    return "[" .. concat(parts, ",") .. "]"
  end
  for k, v in next, t do
    parts[#parts + 1] = "[" .. encode(k, depth + 1) .. "," .. encode(v, depth + 1) .. "]"
  end
  return '{"$dict":[' .. concat(parts, ",") .. "]}"
end

encode = function(value, depth)
  if depth > MAX_DEPTH then error("value nested too deeply", 0) end
  local kind = type(value)
  if kind == "nil" then return "null" end
  if kind == "boolean" then return value and "true" or "false" end
  if kind == "string" then return jstring(value) end
  if kind == "number" then
    if mtype(value) == "integer" then return format("%d", value) end
    if value ~= value then return '{"$float":"nan"}' end
    if value == huge then return '{"$float":"inf"}' end
    if value == -huge then return '{"$float":"-inf"}' end
    return format("%.17g", value)
  end
  if kind == "table" then return encode_table(value, depth) end
  error("returned a value of type " .. kind .. ", not a number, string, boolean or table", 0)
end

local function error_fields(err) -- '"type":...,"msg":...' of a Lua error value
  local message = text(err)
  local name = find(message, "not enough memory", 1, true) and "MemoryError" or "LuaError"
  return '"type":' .. jstring(name) .. ',"msg":' .. jstring(message)
end

-- the program
emit('{"event":"load_start"}')
local handle = read_all("solution.lua", "r")
local source = handle:read("a")
handle:close()
local chunk, err = load(source .. "\nreturn " .. spec.entry, "=solution.lua", "t")
local exported = chunk ~= nil
if not chunk then -- a syntax error, or a program ending in its own `return`
  chunk, err = load(source, "=solution.lua", "t")
end
if not chunk then
  emit('{"event":"load_error","type":"SyntaxError","msg":' .. jstring(text(err)) .. "}")
  return
end
local ok, candidate = pcall(chunk)
if not ok then
  emit('{"event":"load_error",' .. error_fields(candidate) .. "}")
  return
end
if not exported or type(candidate) ~= "function" then
  candidate = rawget(_G, spec.entry)
end
if type(candidate) ~= "function" then
  emit('{"event":"entry_missing","msg":' .. jstring("entry point '" .. spec.entry .. "' is not defined") .. "}")
  return
end
emit('{"event":"loaded"}')

-- the tests: one value (or error) record per case
for i = 1, #spec.cases do
  local prefix = '{"case":' .. (i - 1) .. ","
  emit(prefix .. '"status":"start"}')
  local called, value = pcall(spec.cases[i], candidate)
  if not called then
    emit(prefix .. '"status":"error",' .. error_fields(value) .. "}")
  else
    local encoded, json = pcall(encode, value, 0)
    if encoded then
      emit(prefix .. '"status":"value","value":' .. json .. "}")
    else
      emit(prefix .. '"status":"bad_value","msg":' .. jstring(text(json)) .. "}")
    end
  end
end
emit('{"event":"done"}')
