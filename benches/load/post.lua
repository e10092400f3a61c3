-- wrk script: POST the chat request in $CHAT_BODY_FILE to /v1/chat/completions with
-- a bearer token, the way an SDK calls the Mistral API.
local path = os.getenv("CHAT_BODY_FILE")
local f = assert(io.open(path, "rb"), "cannot open CHAT_BODY_FILE " .. tostring(path))
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("CHAT_AUTHORIZATION") or "Bearer load-test-key"
