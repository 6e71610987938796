-- Weir's Lua runs inside nginx (ngx_lua); busted specs add their own globals.
std = "ngx_lua"
max_line_length = 110
codes = true

files["tests/lua"] = {
    std = "+busted",
    globals = { "ngx" },  -- the specs install a small ngx stub
}
