-- ================================================================
-- FILE: get_contact.lua
-- PATH: /bench/lua/get_contact.lua
-- DESCRIPTION: wrk: GET /api/v1/contacts/{id} with a random id in 1…max_id (args: max_id)
-- VERSION: v1.0.0
-- UPDATED: 2026-11-26 18:00:00
-- ================================================================
dofile("common.lua")

local max_id

function init(args)
  common_init(args)
  max_id = tonumber(args[1])
end

function request()
  return wrk.format("GET", "/api/v1/contacts/" .. math.random(1, max_id))
end
