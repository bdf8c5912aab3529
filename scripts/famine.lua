-- famine.lua: a task that blocks the loop starves every other task.
-- The ticker should print every 0.1 s, but while the "blocker" task runs
-- os.execute("sleep 1") nothing else runs at all. Run it with the famine
-- detector on to see which task did it and where:
--   TIDE_DEBUG=1 tide scripts/famine.lua
local start = tide.now()

local ticker = tide.spawn(function ()
  for i = 1, 8 do
    print(("tick %d at %.1f s"):format(i, tide.now() - start))
    tide.sleep(0.1)
  end
end)

local blocker = tide.spawn(function ()
  tide.sleep(0.25)
  print("blocker: calling os.execute('sleep 1'), which blocks the whole loop")
  os.execute("sleep 1")            -- blocking: use tide.sleep(1) instead
  print("blocker: done")
end)

ticker:await()
blocker:await()
