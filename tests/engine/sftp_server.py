"""A real SFTP server on 127.0.0.1 for tests: the demo file partner's server (asyncssh) without
its poller, on its own thread and event loop."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import asyncssh

from demo.sftp_partner import SftpServer as _Server

USER, PASSWORD = "partner", "sftp-password-0123456789"


class SftpServer:
    def __init__(self, root: Path, *, client_key: asyncssh.SSHKey | None = None) -> None:
        self.root = root
        self._server = _Server(root, users={USER: PASSWORD}, client_key=client_key)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def host_key_line(self) -> str:
        return self._server.host_key_line

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def logged_in(self) -> threading.Event:
        return self._server.logged_in

    def __enter__(self) -> SftpServer:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("SFTP server did not start")
        return self

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._server.start())
        self._ready.set()
        self._loop.run_forever()

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._server.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
