-- The gateway's guard in front of PostgREST's RPCs (nginx + lua-nginx-module;
-- scripts/stack loads it). PostgREST 12 takes some requests only in part, or
-- coerces them, without a word, and the database function never sees the
-- request: an array body calls the function with its first element, a key or a
-- query argument given twice is taken once, a form or CSV body can carry
-- several inputs, `columns` drops keys, and each JSON argument is cast to its
-- SQL type (an object given for a text argument arrives as its JSON text). So
-- for /rest/v1/rpc/<function> the guard refuses, before PostgREST sees them,
-- with a 400 in PostgREST's error shape ({code, details, hint, message}):
--
--   BG001  the body is not one JSON object (an array of any length, a scalar, null)
--   BG002  an argument's JSON type does not match its SQL type (table below)
--   BG003  an argument given more than once: a query argument repeated (after
--          decoding; PostgREST splits on ';' too), a query argument whose name
--          is not a plain name (PostgREST trims names and stops at a byte it
--          does not expect, so `p_user_id%20` is p_user_id again), or a key
--          repeated in the body (after unescaping)
--   BG004  an RPC request in a form that can hide several inputs: a
--          Content-Type other than application/json, Content-Type given twice,
--          or the `columns` query parameter
--
-- Anything else goes to PostgREST unchanged (not JSON at all: PGRST102; an
-- unknown argument: PGRST202). The argument table, {function: {argument:
-- {sql, json}}}, is generated from the live catalog by scripts/stack
-- (scripts/gateway/rpc_args.sql) and loaded once per nginx (re)load; `json` is
-- string, number, integer, boolean or any. A function that is not in the table
-- gets every check but the types. Query arguments (GET) are text: only their
-- names are checked.
--
-- Cost: one pass over the body with string.find, which skips a long string in
-- one plain search and a nested value in a few; nothing is decoded but the keys
-- that carry an escape, and the body is proxied as it came.

local cjson = require("cjson.safe")

local find, sub, byte, match, gmatch, gsub = string.find, string.sub, string.byte, string.match, string.gmatch, string.gsub
local format = string.format

local M = {}
local ARGS = {}

local WANTS = {
  string = "a JSON string (or null)",
  number = "a JSON number (or null)",
  integer = "an integral JSON number (or null)",
  boolean = "true or false (or null)",
}

function M.load(path)
  local file = assert(io.open(path, "r"))
  local text = file:read("*a")
  file:close()
  local table_ = cjson.decode(text)
  if type(table_) ~= "table" then
    error("rpc_guard: " .. path .. " is not a JSON object")
  end
  ARGS = table_
end

local function refuse(code, message, details, hint)
  ngx.status = 400
  ngx.header["Content-Type"] = "application/json; charset=utf-8"
  ngx.print(cjson.encode({
    code = code,
    details = details or cjson.null,
    hint = hint or cjson.null,
    message = message,
  }))
  return ngx.exit(ngx.HTTP_OK)
end

-- The index after the JSON string that starts at i (s[i] is the quote), or nil.
-- A plain find of the next quote (memchr speed: a 64 KiB message is one call,
-- where a pattern would match byte by byte), escaped when an odd number of
-- backslashes precede it.
local function skip_string(s, i)
  local j = i + 1
  while true do
    local k = find(s, '"', j, true)
    if not k then
      return nil
    end
    local p = k - 1
    while p > i and byte(s, p) == 92 do
      p = p - 1
    end
    if (k - 1 - p) % 2 == 0 then
      return k + 1
    end
    j = k + 1
  end
end

-- The index after the object or array that starts at i, or nil. Brackets of
-- both kinds are counted together: in valid JSON they nest properly, and
-- invalid JSON is refused by PostgREST whatever the guard reads.
local function skip_nested(s, i)
  local depth, j = 0, i
  while true do
    local k = find(s, '[][{}"]', j)
    if not k then
      return nil
    end
    local c = byte(s, k)
    if c == 34 then
      j = skip_string(s, k)
      if not j then
        return nil
      end
    else
      if c == 123 or c == 91 then
        depth = depth + 1
      else
        depth = depth - 1
      end
      j = k + 1
      if depth == 0 then
        return j
      end
    end
  end
end

-- The JSON type of the value at i, the index after it, and for a number
-- whether it is written as an integer; nil when it is not a JSON value.
local function value_at(s, i)
  local c = byte(s, i)
  if c == 34 then
    return "string", skip_string(s, i)
  elseif c == 123 then
    return "object", skip_nested(s, i)
  elseif c == 91 then
    return "array", skip_nested(s, i)
  elseif c == 116 then
    if sub(s, i, i + 3) == "true" then
      return "boolean", i + 4
    end
  elseif c == 102 then
    if sub(s, i, i + 4) == "false" then
      return "boolean", i + 5
    end
  elseif c == 110 then
    if sub(s, i, i + 3) == "null" then
      return "null", i + 4
    end
  else
    local _, e = find(s, "^-?%d+", i)
    if e then
      local _, f = find(s, "^%.%d+", e + 1)
      local _, x = find(s, "^[eE][+-]?%d+", (f or e) + 1)
      return "number", (x or f or e) + 1, not (f or x)
    end
  end
  return nil
end

local function check_type(fn, spec, key, jtype, integral)
  if jtype == "null" or spec.json == "any" then
    return
  end
  local ok
  if spec.json == "integer" then
    ok = jtype == "number" and integral
  else
    ok = jtype == spec.json
  end
  if ok then
    return
  end
  local got = "a JSON " .. jtype
  if jtype == "number" and spec.json == "integer" then
    got = "a JSON number that is not written as an integer"
  end
  return refuse(
    "BG002",
    format("argument %s of %s is %s and takes %s, not %s", key, fn, spec.sql, WANTS[spec.json], got),
    format("argument: %s, SQL type: %s, JSON type received: %s", key, spec.sql, jtype),
    "Send each argument as the JSON type of its SQL type: text, uuid and times as strings, numbers as numbers."
  )
end

-- Refuse a body that is not one JSON object, a repeated key and a value of the
-- wrong JSON type; leave what is not JSON at all to PostgREST.
local function check_body(fn, s)
  local i = find(s, "[^ \t\n\r]")
  if not i then
    return -- empty: PostgREST calls the function without arguments
  end
  local c = byte(s, i)
  if c ~= 123 then
    local what
    if c == 91 then
      what = "a JSON array"
    else
      local v = cjson.decode(s)
      if v == nil then
        return -- not JSON: PostgREST's PGRST102
      end
      what = v == cjson.null and "JSON null" or "a JSON " .. type(v)
    end
    return refuse(
      "BG001",
      format("the body of an RPC must be one JSON object of named arguments, not %s", what),
      "PostgREST would call the function with the first element of an array and drop the others.",
      "Call the RPC once per object."
    )
  end
  local specs = ARGS[fn]
  local seen = {}
  i = find(s, "[^ \t\n\r]", i + 1)
  if i and byte(s, i) == 125 then
    return
  end
  while i do
    if byte(s, i) ~= 34 then
      return
    end
    local j = skip_string(s, i)
    if not j then
      return
    end
    local key = sub(s, i + 1, j - 2)
    if find(key, "\\", 1, true) then
      key = cjson.decode(sub(s, i, j - 1))
      if type(key) ~= "string" then
        return
      end
    end
    if seen[key] then
      return refuse(
        "BG003",
        format("argument %s is given more than once in the body", key),
        "PostgREST would take one of them and drop the other.",
        nil
      )
    end
    seen[key] = true
    i = find(s, "[^ \t\n\r]", j)
    if not i or byte(s, i) ~= 58 then
      return
    end
    i = find(s, "[^ \t\n\r]", i + 1)
    if not i then
      return
    end
    local jtype, after, integral = value_at(s, i)
    if not after then
      return
    end
    local spec = specs and specs[key]
    if spec then
      check_type(fn, spec, key, jtype, integral)
    end
    i = find(s, "[^ \t\n\r]", after)
    if not i then
      return
    end
    c = byte(s, i)
    if c == 125 then
      return
    elseif c ~= 44 then
      return
    end
    i = find(s, "[^ \t\n\r]", i + 1)
  end
end

local function check_query(args)
  local seen = {}
  for part in gmatch(args, "[^&;]+") do
    local name = ngx.unescape_uri((gsub(match(part, "^[^=]*"), "+", " ")))
    if not find(name, "^[A-Za-z_][A-Za-z0-9_]*$") then
      return refuse(
        "BG003",
        format("query argument name %q is not a plain name", name),
        "PostgREST trims argument names and stops at a byte it does not expect, so such a name can repeat another.",
        "Name each argument once, with letters, digits and underscores only."
      )
    end
    if name == "columns" then
      return refuse(
        "BG004",
        "the columns query parameter is not accepted on an RPC",
        "PostgREST would pass only the listed keys of the body and drop the others.",
        "Send only the arguments you mean."
      )
    end
    if seen[name] then
      return refuse(
        "BG003",
        format("query argument %s is given more than once", name),
        "PostgREST would take one of them and drop the other.",
        nil
      )
    end
    seen[name] = true
  end
end

local function check_content_type()
  -- every header (0: no limit of 100), so that a Content-Type after the
  -- hundredth is not missed; nginx bounds their total size
  local ct = ngx.req.get_headers(0)["content-type"]
  if ct == nil then
    return -- PostgREST reads JSON
  end
  if type(ct) == "table" then
    return refuse("BG004", "Content-Type is given more than once", "PostgREST would read the first.", nil)
  end
  if find(ct, "^application/json%s*$") or find(ct, "^application/json%s*;") then
    return
  end
  return refuse(
    "BG004",
    format("an RPC takes a JSON object: Content-Type %s is not accepted", ct),
    "A form or CSV body can carry several inputs, of which PostgREST would take one.",
    "Send Content-Type: application/json."
  )
end

-- access_by_lua: the checks of one request under /rest/v1/.
function M.check()
  local fn = match(ngx.var.uri, "^/rest/v1/rpc/(.*)$")
  if not fn then
    return
  end
  local args = ngx.var.args
  if args then
    check_query(args)
  end
  if ngx.req.get_method() ~= "POST" then
    return
  end
  check_content_type()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if not body then
    local path = ngx.req.get_body_file()
    if not path then
      return -- no body
    end
    -- not expected: client_body_buffer_size equals client_max_body_size
    local file = assert(io.open(path, "rb"))
    body = file:read("*a")
    file:close()
  end
  check_body(fn, body)
end

return M
