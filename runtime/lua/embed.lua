-- embed.lua: write a C file holding a Lua source as a byte array.
-- lua5.4 embed.lua OUT.c SOURCE.lua NAME
local out_path, src_path, name = arg[1], arg[2], arg[3]
local src = assert(io.open(src_path, "rb")):read("a")
local out = assert(io.open(out_path, "w"))
out:write("/* generated from ", src_path, "; do not edit */\n")
out:write("#include <stddef.h>\n")
out:write("const char ", name, "_source[] = {\n")
for i = 1, #src, 16 do
  local bytes = { src:byte(i, math.min(i + 15, #src)) }
  out:write("  ", table.concat(bytes, ","), ",\n")
end
out:write("  0\n};\n")
out:write("const size_t ", name, "_size = ", #src, ";\n")
out:close()
