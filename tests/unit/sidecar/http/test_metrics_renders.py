"""`/metrics` under the asyncio worker: one render at a time; scrapes that arrive during a
render share the next one, and a scraper that hangs up cancels nobody else's."""

from __future__ import annotations

import asyncio
import threading

from sidecar.http.loop_front import MetricsRenders


def test_scrapes_during_a_render_share_the_next_one_and_see_what_came_before_them():
    gate = threading.Event()
    calls: list[int] = []

    def render(environ: dict[str, object]) -> tuple[str, list[tuple[str, str]], bytes]:
        calls.append(len(calls) + 1)
        number = len(calls)
        if number == 1:
            assert gate.wait(10)
        return "200 OK", [], b"render %d" % number

    async def main() -> list[bytes]:
        renders = MetricsRenders(render)
        first = asyncio.ensure_future(renders.scrape({}))
        await asyncio.sleep(0.05)  # the first render is under way, held
        later = [asyncio.ensure_future(renders.scrape({})) for _ in range(4)]
        gone = asyncio.ensure_future(renders.scrape({}))
        await asyncio.sleep(0.01)
        gone.cancel()  # its client hung up: the others still get their render
        gate.set()
        answers = await asyncio.gather(first, *later)
        return [body for _, _, body in answers]

    bodies = asyncio.run(main())
    assert bodies == [b"render 1"] + [b"render 2"] * 4  # the later ones: a render after them
    assert calls == [1, 2]  # two renders for six scrapes


def test_a_scrape_after_the_renders_end_starts_its_own():
    count = 0

    def render(environ: dict[str, object]) -> tuple[str, list[tuple[str, str]], bytes]:
        nonlocal count
        count += 1
        return "200 OK", [], b"%d" % count

    async def main() -> list[bytes]:
        renders = MetricsRenders(render)
        return [(await renders.scrape({}))[2] for _ in range(3)]

    assert asyncio.run(main()) == [b"1", b"2", b"3"]
