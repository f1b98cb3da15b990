-- ================================================================
-- FILE: list_contacts.lua
-- PATH: /bench/lua/list_contacts.lua
-- DESCRIPTION: wrk: GET /api/v1/contacts/?skip={random}&limit=100 (args: max_skip)
-- VERSION: v1.0.0
-- UPDATED: 2026-11-26 18:00:00
-- ================================================================
dofile("common.lua")

local max_skip

function init(args)
  common_init(args)
  max_skip = tonumber(args[1])
end

function request()
  return wrk.format("GET", "/api/v1/contacts/?skip=" .. math.random(0, max_skip) .. "&limit=100")
end
