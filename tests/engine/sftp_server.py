"""A real SFTP server on 127.0.0.1 for tests (asyncssh, on its own thread and event loop):
password and public-key logins, files under a temporary root, a fixed host key."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import asyncssh

USER, PASSWORD = "partner", "sftp-password-0123456789"


class SftpServer:
    def __init__(self, root: Path, *, client_key: asyncssh.SSHKey | None = None) -> None:
        self.root = root
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = client_key
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def host_key_line(self) -> str:
        return self.host_key.export_public_key().decode().strip()

    @property
    def url(self) -> str:
        return f"sftp://127.0.0.1:{self.port}"

    def __enter__(self) -> SftpServer:
        for folder in ("inbox", "outbox", "archive", "error"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("SFTP server did not start")
        return self

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        outer = self

        class Server(asyncssh.SSHServer):
            def begin_auth(self, username: str) -> bool:
                return True

            def password_auth_supported(self) -> bool:
                return True

            def validate_password(self, username: str, password: str) -> bool:
                return username == USER and password == PASSWORD

            def public_key_auth_supported(self) -> bool:
                return outer.client_key is not None

            def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
                return (
                    username == USER
                    and outer.client_key is not None
                    and key.export_public_key() == outer.client_key.export_public_key()
                )

        root = str(self.root)
        self._server = await asyncssh.create_server(
            Server,
            "127.0.0.1",
            0,
            server_host_keys=[self.host_key],
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=root.encode()),
            allow_scp=False,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None

        async def stop() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
