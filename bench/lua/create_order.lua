-- ================================================================
-- FILE: create_order.lua
-- PATH: /bench/lua/create_order.lua
-- DESCRIPTION: wrk: POST /api/v1/orders/ for a random seeded contact (gRPC validation; args: max_contact_id)
-- VERSION: v1.1.0
-- UPDATED: 2026-12-02 05:45:00
-- ================================================================
dofile("common.lua")

local max_contact_id

function init(args)
  common_init(args)
  max_contact_id = tonumber(args[1])
end

function request()
  local body = string.format(
    '{"contact_id": %d, "currency": "EUR", "lines": [' ..
    '{"description": "Bench item", "quantity": "2", "unit_price": "19.99"}, ' ..
    '{"description": "Bench service", "quantity": "1.5", "unit_price": "80.00"}]}',
    math.random(1, max_contact_id))
  return wrk.format("POST", "/api/v1/orders/", with_headers({ ["Content-Type"] = "application/json" }), body)
end
