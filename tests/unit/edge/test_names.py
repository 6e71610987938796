"""The names nginx.conf shares with Lua: one definition per language, and the two agree."""

from __future__ import annotations

import re

from scripts.edge import names
from scripts.edge.render import TEMPLATE_DIR


def test_python_and_lua_define_the_same_names(run_lua) -> None:
    lua = run_lua(
        'local n = require("weir.names") io.write(cjson.encode({dict = n.DICT, var = n.VAR}))'
    )
    assert lua["dict"] == names.DICT
    assert lua["var"] == names.VAR
    assert set(names.DICT_SIZES) == set(names.DICT.values())


def test_the_template_spells_no_shared_name_itself() -> None:
    template = (TEMPLATE_DIR / "nginx.conf.j2").read_text()
    # (@weir_... are the template's own named locations, not names shared with Lua.)
    exact = [rf"(?<![@\w]){name}(?!\w)" for name in [*names.DICT.values(), *names.VAR.values()]]
    prefixes = [r"(?<![@\w])weir_bucket_", r"(?<![@\w])weir_key_", r"(?<![@\w])weir_\{\{"]
    for pattern in exact + prefixes:
        found = re.search(pattern, template)
        assert not found, f"{found and found.group()} is a literal in nginx.conf.j2: use names"
