-- ================================================================
-- FILE: get_order.lua
-- PATH: /bench/lua/get_order.lua
-- DESCRIPTION: wrk: GET /api/v1/orders/{id} (lines and contact name) with a random id (args: max_id)
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
  return wrk.format("GET", "/api/v1/orders/" .. math.random(1, max_id))
end
