"""``scalehp dashboard``: watch runs live in the browser, from their Parquet tables (never Ray).

``data.py``    :class:`Board`: the runs under a results root, each read once and then only
               what lands (part files are written whole), answering every view as JSON data
``server.py``  the read-only aiohttp server: loopback by default, a token on any other address
``static/``    the page: vanilla JavaScript and uPlot (vendored, MIT), nothing from the network

Example:
    >>> from scalehp.dashboard import Board
    >>> Board("results").runs()[0]["progress"]    # doctest: +SKIP
"""

from __future__ import annotations

from scalehp.dashboard.data import Board
from scalehp.dashboard.server import in_thread, serve

__all__ = ["Board", "in_thread", "serve"]
