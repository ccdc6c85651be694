-- wrk script: cycles through the query requests `sextant load --prepare-only FILE`
-- wrote (first line the query URL, then one JSON body per line), so the same
-- C load generator with the same bodies drives Sextant's API and ChromaDB.
--   wrk -t2 -c8 -d10s -s tools/compare/wrk-query.lua http://HOST:PORT -- FILE
local bodies, path = {}, nil
local counter = 0

function init(args)
  local file = assert(io.open(args[1], "r"), "cannot open " .. tostring(args[1]))
  local url = file:read("*l")
  path = url:match("^https?://[^/]+(/.*)$")
  for line in file:lines() do bodies[#bodies + 1] = line end
  file:close()
  counter = math.random(#bodies)
end

function request()
  counter = counter % #bodies + 1
  return wrk.format("POST", path, { ["Content-Type"] = "application/json" }, bodies[counter])
end

function response(status, headers, body)
  if status ~= 200 then error("HTTP " .. status .. ": " .. body) end
end
