-- POST /data with a name never used before (prefix from the first argument, API key second)
local prefix, counter = "", 0
local headers = {["Content-Type"] = "application/json"}
init = function(args)
  prefix = args[1] .. "-" .. math.random(1, 1000000000)
  if args[2] and args[2] ~= "" then headers["Authorization"] = "Bearer " .. args[2] end
end
request = function()
  counter = counter + 1
  return wrk.format("POST", "/data", headers, '{"name":"' .. prefix .. "-" .. counter .. '"}')
end
