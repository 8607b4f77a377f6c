"""Start the viewer: index the runs, then serve on the loopback interface."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

from ..errors import EvalkitError
from ..runpaths import find_run_dirs
from . import links
from .app import make_app
from .index import build_index


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1 (port 0: a free one); a taken port is one clear error."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((links.HOST, port))
    except OSError as exc:
        sock.close()
        raise EvalkitError(f"cannot listen on {links.HOST}:{port} ({exc.strerror}); pick another with --port") from None
    sock.listen(128)
    return sock


def serve(paths: Sequence[Path | str], port: int, announce: Callable[[str], None]) -> None:
    import uvicorn

    index = build_index(find_run_dirs(paths))
    sock = bind(port)
    url = f"http://{links.HOST}:{sock.getsockname()[1]}/"
    announce(f"evalkit view: {len(index.rows)} samples of {len(index.runs)} run(s) at {url} (Ctrl-C stops)")
    config = uvicorn.Config(make_app(index), log_level="warning", lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


@contextmanager
def serving(paths: Sequence[Path | str], port: int = 0) -> Iterator[str]:
    """The viewer in a background thread for as long as the block runs; yields its URL (tests, the
    screenshots script)."""
    import uvicorn

    index = build_index(find_run_dirs(paths))
    sock = bind(port)
    server = uvicorn.Server(uvicorn.Config(make_app(index), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started and thread.is_alive():
            time.sleep(0.02)
        yield f"http://{links.HOST}:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
