wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"items": ["85123A", "71053", "22423", "47566"], "k": 10}'
