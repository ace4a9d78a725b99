"""The vault key file under concurrent first use: every process ends up with the same key."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

from services.core import vault
from services.core.settings import Settings


def _load_after(barrier: multiprocessing.synchronize.Barrier, data_dir: Path, out) -> None:  # type: ignore[no-untyped-def]
    barrier.wait()
    config = Settings(database_url="sqlite://", data_dir=data_dir)
    try:
        out.put(vault.load(config).seal("x") and vault.key_path(config).read_bytes())
    except Exception as error:  # reported to the test, which fails naming it
        out.put(repr(error).encode())


def test_processes_creating_the_key_at_once_all_read_one_whole_key(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    for round_ in range(5):
        data_dir = tmp_path / f"round{round_}" / "data"
        barrier = context.Barrier(8)
        out = context.Queue()
        workers = [
            context.Process(target=_load_after, args=(barrier, data_dir, out)) for _ in range(8)
        ]
        for worker in workers:
            worker.start()
        keys = {out.get(timeout=30) for _ in workers}
        for worker in workers:
            worker.join(timeout=30)
        assert len(keys) == 1, keys
        assert len(keys.pop().strip()) == 44  # a whole Fernet key, never an empty or cut one
        assert sorted(p.name for p in data_dir.iterdir()) == [vault.KEY_FILE]  # no leftovers
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        assert (
            stat.S_IMODE(
                vault.key_path(Settings(database_url="sqlite://", data_dir=data_dir)).stat().st_mode
            )
            == 0o600
        )
