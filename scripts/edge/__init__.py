"""The edge's Python half: the nginx binary and process operations, rendering (nginx.conf and the
Lua settings, whose twin is lua/weir/settings.lua), the names nginx.conf shares with the Lua
modules, the revision store, live changes (reload or live settings, then verify) and the admin
API client."""
