-- GET /data/{id} over ids 1..N (N from the first script argument)
local max_id = 1000
init = function(args) max_id = tonumber(args[1]) end
request = function() return wrk.format("GET", "/data/" .. math.random(1, max_id)) end
