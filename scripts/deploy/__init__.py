"""Changing what the edge serves: the one pipeline (`pipeline.py`: apply, rollback, an edge's
start and every restart), the history of applied revisions (`history.py`), the change lock
(`lock.py`) and the commands `weir validate | render | apply | rollback | history`
(`commands.py`). Above `edge` and `fleet`; below `stack`.

A failed change raises `DeployError` (or `LiveChangeError`), whose one home is
`scripts.edge.errors`: import them from there, never through this package.
"""
