-- wrk script: POST OFREP single-flag evaluations over 10,000 rotating contexts.
local customers = {"acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell"}
local bodies = {}
for i = 1, 10000 do
  bodies[i] = string.format('{"context":{"targetingKey":"user-%05d","customer":"%s"}}',
                            i, customers[(i % #customers) + 1])
end
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  return wrk.format(nil, wrk.path, nil, bodies[(n % 10000) + 1])
end
