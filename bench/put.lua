-- wrk script: PUT assessments of distinct resources below WRK_PREFIX (a resource group id), so
-- every request is a real write (a new assessment) and none waits on another's row.
local prefix = os.getenv("WRK_PREFIX") or "/subscriptions/20ff7fc3-e762-44dd-bd96-b71116dcdc23/resourceGroups/bench"
local counter = 0
local thread_id = math.random(1, 1000000000)
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"properties":{"resourceDetails":{"source":"Azure"},"status":{"code":"Unhealthy"}}}'

request = function()
  counter = counter + 1
  local path = string.format(
    "%s/providers/Microsoft.Compute/virtualMachines/vm-%d-%d/providers/Microsoft.Security/assessments/21300918-b2e3-0346-785f-c77ff57d243b?api-version=2020-01-01",
    prefix, thread_id, counter)
  return wrk.format(nil, path)
end
