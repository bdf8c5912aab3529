-- commands.lua: ten commands run at once, their outputs printed in the
-- order the commands were given, each as soon as it and those before it
-- are done. The whole takes as long as the slowest command, not the sum.
-- Run: tide scripts/commands.lua
local commands = {
  "echo one; sleep 0.5",
  "sleep 0.3; echo two",
  "uname -s",
  "date +%Y",
  "sleep 0.2; echo five",
  "ls / | wc -l",
  "echo seven >&2",                      -- stderr is collected too
  "printf 'eight\\n'; exit 3",           -- and the exit code
  "echo nine; exec sleep 10",            -- killed after 1 s
  "no-such-command-anywhere",            -- sh reports 127
}

local start = tide.now()
local tasks = {}
for i, cmd in ipairs(commands) do
  tasks[i] = tide.spawn(tide.process.exec, cmd, { timeout = 1 })
end
for i, t in ipairs(tasks) do
  local out, err, code, signal = t:await()
  if out == nil then                     -- nil, "timeout", stdout, stderr
    out, err, code, signal = code, signal, err, nil
  end
  io.write(("[%d] %s  (%s%s)\n"):format(i, commands[i],
    math.type(code) and "exit " or "", code, signal and " " .. signal or ""))
  io.write(out)
  if err ~= "" then io.write("stderr: ", err) end
end
print(("all done after %.2f s"):format(tide.now() - start))   -- about 1 s
