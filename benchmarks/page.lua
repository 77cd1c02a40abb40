-- GET /data?after=X&limit=100 for X spread over the whole table (N rows, first argument)
local max_id = 1000
init = function(args) max_id = tonumber(args[1]) end
request = function()
  return wrk.format("GET", "/data?limit=100&after=" .. math.random(0, max_id - 100))
end
