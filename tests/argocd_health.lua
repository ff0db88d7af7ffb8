-- Test driver for docs/argocd-health.lua, run by tests/chart.rs with a real Lua interpreter:
--   lua5.4 tests/argocd_health.lua docs/argocd-health.lua
-- Runs the health check on sample MediaServicesAccount objects the way Argo CD does (the
-- object in the global `obj`, the script's return value read as the health), prints one line per
-- case and exits non-zero when any case gets the wrong status or message. Works on Lua 5.1
-- (Argo CD's dialect) and 5.2+.

local script_path = assert(arg[1], "usage: argocd_health.lua PATH/TO/argocd-health.lua")
local file = assert(io.open(script_path, "r"))
local source = file:read("*a")
file:close()

-- Argo CD gives the script a fresh environment per call; so does this.
local function run(object)
  local env = setmetatable({ obj = object }, { __index = _G })
  local chunk, err
  if setfenv then
    chunk, err = loadstring(source, "=argocd-health.lua")
    if chunk then setfenv(chunk, env) end
  else
    chunk, err = load(source, "=argocd-health.lua", "t", env)
  end
  assert(chunk, err)
  return chunk()
end

local function account(generation, status)
  return {
    apiVersion = "ams-security.io/v1alpha1",
    kind = "MediaServicesAccount",
    metadata = { name = "fabrikam-media", namespace = "media", generation = generation },
    spec = {},
    status = status,
  }
end

local function ready(status, reason, message, observed)
  return {
    observedGeneration = observed,
    conditions = {
      { type = "IdentityReady", status = "True", reason = "Succeeded", observedGeneration = observed },
      { type = "Ready", status = status, reason = reason, message = message, observedGeneration = observed },
      { type = "CustomerKeyInaccessible", status = "False", reason = "KeyAccessible", observedGeneration = observed },
    },
  }
end

local cases = {
  { name = "ready for the current generation is Healthy",
    obj = account(3, ready("True", "Succeeded", "the account matches the spec", 3)),
    status = "Healthy", message = "the account matches the spec" },
  { name = "no status yet is Progressing",
    obj = account(1, nil),
    status = "Progressing", message = "status" },
  { name = "status without conditions is Progressing",
    obj = account(1, { observedGeneration = 1 }),
    status = "Progressing", message = "status" },
  { name = "a stale observedGeneration is Progressing even when Ready was True",
    obj = account(4, ready("True", "Succeeded", "the account matches the spec", 3)),
    status = "Progressing", message = "generation 4" },
  { name = "a Ready condition observed for an older generation is Progressing",
    obj = account(4, (function()
      local s = ready("True", "Succeeded", "ok", 3)
      s.observedGeneration = 4
      return s
    end)()),
    status = "Progressing", message = "generation 4" },
  { name = "InProgress is Progressing",
    obj = account(2, ready("False", "InProgress", "waiting on the account update operation", 2)),
    status = "Progressing", message = "InProgress: waiting on the account update operation" },
  { name = "Propagating is Progressing",
    obj = account(2, ready("False", "Propagating", "the new principal is not visible yet", 2)),
    status = "Progressing", message = "Propagating" },
  { name = "an inaccessible customer key is Degraded with its cause",
    obj = account(2, ready("False", "KeyDisabled", "key account-key version 0123 is disabled", 2)),
    status = "Degraded", message = "KeyDisabled: key account-key version 0123 is disabled" },
  { name = "an invalid spec is Degraded",
    obj = account(1, ready("False", "InvalidSpec", "spec.storage.accounts: exactly one Primary", 1)),
    status = "Degraded", message = "InvalidSpec: spec.storage.accounts: exactly one Primary" },
  { name = "a transient error is Degraded",
    obj = account(1, ready("Unknown", "TransientError", "ARM answered 503", 1)),
    status = "Degraded", message = "TransientError" },
  { name = "suspend is Suspended",
    obj = account(5, ready("False", "Suspended", "reconciliation is suspended by spec.suspend", 5)),
    status = "Suspended", message = "Suspended" },
}

local failed = 0
for _, case in ipairs(cases) do
  local ok, health = pcall(run, case.obj)
  local problem = nil
  if not ok then
    problem = "the script failed: " .. tostring(health)
  elseif type(health) ~= "table" then
    problem = "the script returned " .. type(health) .. ", not a table"
  elseif health.status ~= case.status then
    problem = "status " .. tostring(health.status) .. ", want " .. case.status
      .. " (message: " .. tostring(health.message) .. ")"
  elseif type(health.message) ~= "string" or not string.find(health.message, case.message, 1, true) then
    problem = "message " .. tostring(health.message) .. " does not contain " .. case.message
  end
  if problem then
    failed = failed + 1
    print("FAIL " .. case.name .. ": " .. problem)
  else
    print("ok   " .. case.name .. " -> " .. case.status)
  end
end
print((#cases - failed) .. " of " .. #cases .. " cases ok")
if failed > 0 then os.exit(1) end
