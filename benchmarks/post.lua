-- POST /data with a name never used before: prefix (first argument), wrk thread, counter.
-- The API key (second argument) is sent when given.
local threads = 0
local counter = 0
local prefix = ""
local headers = {["Content-Type"] = "application/json"}

function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  prefix = args[1] .. "-" .. thread_number
  if args[2] and args[2] ~= "" then headers["Authorization"] = "Bearer " .. args[2] end
end

function request()
  counter = counter + 1
  return wrk.format("POST", "/data", headers, '{"name":"' .. prefix .. "-" .. counter .. '"}')
end
