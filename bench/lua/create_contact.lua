-- ================================================================
-- FILE: create_contact.lua
-- PATH: /bench/lua/create_contact.lua
-- DESCRIPTION: wrk: POST /api/v1/contacts/ with a unique email per request (args: run nonce)
-- VERSION: v1.1.0
-- UPDATED: 2026-12-02 05:45:00
-- ================================================================
dofile("common.lua")

local nonce
local path
local sequence = 0

function init(args)
  common_init(args)
  nonce = args[1]
  path = args[2] or "/api/v1/contacts/"
end

function request()
  sequence = sequence + 1
  local body = string.format(
    '{"name": "Bench Contact %d", "email": "bench-%s-%d-%d@example.com", "phone": "+421 900 123 456"}',
    sequence, nonce, thread_id, sequence)
  return wrk.format("POST", path, with_headers({ ["Content-Type"] = "application/json" }), body)
end
