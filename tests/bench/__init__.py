"""`make bench`: Weir's sidecar against its baselines, on this machine, in one run.

Not collected by pytest (no test_*.py here). One module per concern, reusable for the edge-hop
benchmark (requests through the edge vs straight to the same sidecar, both as `Target`s):

    run.py          the entry point: options, sections (servers, isolation), RESULTS.md
    lineup.py       who is measured: targets and isolation layouts from the options
    cells.py        slices under wrk, rounds interleaved, the ceiling around sidecar slices
    isolation.py    light model + health probe alone and with a heavy model saturated
    isolation_report.py  the isolation table and issue 9's goals
    procs.py        start/stop servers by PID on dynamic loopback ports, readiness, CPU
                    affinity, tree RSS and PSS
    servers.py      the targets: naive Flask, bare meinheld, `weir sidecar` configurations
                    (every worker class its Settings accept), bench hosts of Weir's stack
    loadgen.py      wrk with a generated Lua script (binary-safe bodies), JSON summary parsed
    payloads.py     V2 request bodies (JSON, binary tensors) and an answer check against ORT
    ceiling.py      in-process ORT: batch-size sweep and the per-group ceiling
    prom.py         histogram _sum/_count out of Prometheus text (mean batch size)
    report.py       rows, ratios, the issue's targets, Markdown tables
    page.py         the RESULTS.md page around the tables
    profile.py      py-spy on a server worker under wrk load (`pip install py-spy` first)
    naive_flask.py  baseline (a): Flask `app.run()`, ORT per request
    bare_meinheld.py baseline (b): gunicorn + meinheld + Falcon, ORT per request, nothing else
    granian_weir.py Weir's real worker stack under granian (WSGI, blocking threads)
    gevent_weir.py  Weir's real worker stack under gunicorn's gevent worker
"""
