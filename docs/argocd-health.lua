-- Argo CD health check for ams-security.io/MediaServicesAccount.
--
-- Install it in argocd-cm under the key
--   resource.customizations.health.ams-security.io_MediaServicesAccount
-- (docs/install.md). Argo CD runs it with the live object in `obj` and expects a table with
-- `status` and `message`. Written for Lua 5.1 (Argo CD's interpreter) and tested with 5.4 too.
--
--   Healthy      Ready=True for the object's current generation
--   Suspended    Ready's reason is Suspended (spec.suspend: true)
--   Progressing  no status yet, the operator has not observed the current generation, or Ready
--                is not True with reason InProgress (a long-running Azure operation) or
--                Propagating (Azure is propagating a new grant)
--   Degraded     anything else, with Ready's reason and message (e.g. KeyDisabled when the
--                customer key is inaccessible, InvalidSpec, StorageAccessMissing)

local hs = {}

local function progressing(message)
  hs.status = "Progressing"
  hs.message = message
  return hs
end

local status = obj.status
if status == nil or status.conditions == nil then
  return progressing("Waiting for the operator to report status")
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  return progressing("Waiting for the operator to observe generation " .. tostring(generation))
end

local ready = nil
for _, condition in ipairs(status.conditions) do
  if condition.type == "Ready" then
    ready = condition
  end
end
if ready == nil then
  return progressing("Waiting for the Ready condition")
end
if generation ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation then
  return progressing("Waiting for the operator to observe generation " .. tostring(generation))
end

local message = ready.message or ""
if ready.reason ~= nil and ready.reason ~= "" then
  if message == "" then
    message = ready.reason
  else
    message = ready.reason .. ": " .. message
  end
end

if ready.status == "True" then
  hs.status = "Healthy"
elseif ready.reason == "Suspended" then
  hs.status = "Suspended"
elseif ready.reason == "InProgress" or ready.reason == "Propagating" then
  hs.status = "Progressing"
else
  hs.status = "Degraded"
end
hs.message = message
return hs
