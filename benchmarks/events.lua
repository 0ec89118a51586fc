-- Live order events, each with an order id of its own (a repeat would be a duplicate),
-- for benchmarks/events_speed.py. The token comes from the INGEST_TOKEN variable.
local token = os.getenv("INGEST_TOKEN") or ""
local thread_tag = os.getenv("RUN_TAG") or "0"  -- new per wrk run: no id repeats
local n = 0
request = function()
  n = n + 1
  local body = '{"order_id": "b' .. thread_tag .. '-' .. n .. '", "customer_id": "c' .. (n % 5000) ..
    '", "purchased_at": "2011-12-09T12:00:00Z", "items": [{"item_id": "85123A", "quantity": 2, ' ..
    '"price": 2.55}, {"item_id": "22423", "quantity": 1, "price": 12.75}]}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token}, body)
end
