"""FENDER_LOG_FILE: lines appended whole, rotated by size, by several processes at once.

The concurrent cases run real processes on one file, both ways a server makes them: started
independently (each opens the file), and forked from a parent that opened it first, as
gunicorn forks its workers from the master that configured logging.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from fender.errors import ConfigurationError
from fender.observability._logfile import RotatingFile
from fender.observability._logging import access_log, configure_logging, get_logger
from fender.settings import load_settings

SRC = str(Path(__file__).resolve().parents[2] / "src")


def settings(**env: str):
    return load_settings({"FENDER_ENV": "development", **env}, env_file=None)


@pytest.fixture(autouse=True)
def _fresh_logging():
    yield
    configure_logging(settings())


def log_files(path: Path) -> list[Path]:
    """``path`` and its rotated files, newest first."""
    rotated = sorted(
        (p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()),
        key=lambda p: int(p.suffix[1:]),
    )
    return [p for p in [path, *rotated] if p.exists()]


def lines_of(files: list[Path]) -> list[dict[str, object]]:
    """Every line of ``files``, each parsed (a torn line fails to parse)."""
    out = []
    for file in files:
        data = file.read_bytes()
        assert not data or data.endswith(b"\n"), f"{file.name} ends mid-line"
        out.extend(orjson.loads(line) for line in data.splitlines())
    return out


def line(n: int, width: int = 80) -> bytes:
    return orjson.dumps({"n": n, "pad": "x" * (width - 20)}) + b"\n"


# --- one process --------------------------------------------------------------------------


def test_rotation_keeps_backups_plus_one_files_each_under_the_limit(tmp_path):
    path = tmp_path / "app.log"
    sink = RotatingFile(str(path), max_bytes=1000, backups=3)
    for n in range(200):
        sink.write(line(n))
    sink.close()
    files = log_files(path)
    assert [f.name for f in files] == ["app.log", "app.log.1", "app.log.2", "app.log.3"]
    assert all(f.stat().st_size <= 1000 for f in files)
    numbers = [e["n"] for f in reversed(files) for e in lines_of([f])]
    assert numbers == list(range(numbers[0], 200))  # the newest lines, in order, none lost


def test_a_line_longer_than_the_limit_is_written_whole_alone(tmp_path):
    path = tmp_path / "app.log"
    sink = RotatingFile(str(path), max_bytes=100, backups=2)
    sink.write(line(1, 50))
    sink.write(line(2, 500))
    sink.write(line(3, 50))
    sink.close()
    assert [e["n"] for e in lines_of([path])] == [3]
    assert [e["n"] for e in lines_of([tmp_path / "app.log.1"])] == [2]


def test_a_rotation_by_another_writer_is_noticed(tmp_path):
    path = tmp_path / "app.log"
    first = RotatingFile(str(path), max_bytes=300, backups=2)
    second = RotatingFile(str(path), max_bytes=300, backups=2)  # as another process would
    for n in range(4):
        first.write(line(n))  # the 4th line rotates
    second.write(line(99))  # into the new file, not the renamed one
    assert [e["n"] for e in lines_of([path])] == [3, 99]
    path.unlink()  # an outside cleanup
    second.write(line(100))
    assert [e["n"] for e in lines_of([path])] == [100]
    first.close()
    second.close()


def test_a_failed_rotation_is_said_once_and_appending_goes_on(tmp_path):
    path = tmp_path / "app.log"
    (tmp_path / "app.log.1").mkdir()  # a directory in the way: the rename fails, even as root
    (tmp_path / "app.log.1" / "keep").write_text("x")
    sink = RotatingFile(str(path), max_bytes=200, backups=1)
    for n in range(10):
        sink.write(line(n))
    sink.close()
    events = lines_of([path])
    assert [e["event"] for e in events if "event" in e] == ["log_rotation_failed"]
    assert [e["n"] for e in events if "n" in e] == list(range(10))


def test_writes_after_close_are_dropped(tmp_path):
    sink = RotatingFile(str(tmp_path / "app.log"), max_bytes=1000, backups=1)
    sink.close()
    sink.write(line(1))
    sink.close()
    assert (tmp_path / "app.log").read_bytes() == b""


# --- several processes ----------------------------------------------------------------------

WRITER = """
    import os, sys
    import orjson
    from fender.observability._logfile import RotatingFile

    path, mode, workers, count, max_bytes, backups = sys.argv[1:7]
    workers, count = int(workers), int(count)

    def write(worker, sink):
        for n in range(count):
            # lines of several sizes, so that rotations fall between any two writers
            pad = "x" * (40 + (n * 7 + worker * 13) % 160)
            sink.write(orjson.dumps({"w": worker, "n": n, "pad": pad}) + b"\\n")

    if mode == "fork":  # one sink opened by the parent, inherited by each child
        sink = RotatingFile(path, max_bytes=int(max_bytes), backups=int(backups))
        children = []
        for worker in range(workers):
            pid = os.fork()
            if pid == 0:
                write(worker, sink)
                os._exit(0)
            children.append(pid)
        assert all(os.waitpid(pid, 0)[1] == 0 for pid in children)
    else:  # a process of its own
        write(int(mode), RotatingFile(path, max_bytes=int(max_bytes), backups=int(backups)))
"""


def run_writers(
    path: Path, *, independent: bool, workers: int, count: int, max_bytes: int, backups: int
) -> None:
    env = {**os.environ, "PYTHONPATH": SRC}
    args = [str(path), "", str(workers), str(count), str(max_bytes), str(backups)]
    script = textwrap.dedent(WRITER)
    if independent:
        procs = [
            subprocess.Popen([sys.executable, "-c", script, *args[:1], str(w), *args[2:]], env=env)
            for w in range(workers)
        ]
        assert [p.wait(timeout=120) for p in procs] == [0] * workers
    else:
        done = subprocess.run(
            [sys.executable, "-c", script, args[0], "fork", *args[2:]],
            env=env,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0


@pytest.mark.parametrize("independent", [True, False], ids=["independent", "forked"])
def test_concurrent_writers_lose_and_tear_no_line(tmp_path, independent):
    path = tmp_path / "app.log"
    workers, count, max_bytes = 4, 1500, 8192
    # Enough backups to keep every line: the test counts them all.
    run_writers(
        path,
        independent=independent,
        workers=workers,
        count=count,
        max_bytes=max_bytes,
        backups=1000,
    )
    files = log_files(path)
    assert len(files) > 20  # it did rotate, many times, under concurrent writers
    assert all(f.stat().st_size <= max_bytes for f in files)
    events = lines_of(files)
    assert sorted((e["w"], e["n"]) for e in events) == [
        (w, n) for w in range(workers) for n in range(count)
    ]
    for worker in range(workers):  # each writer's lines in its order, across the files
        mine = [e["n"] for f in reversed(files) for e in lines_of([f]) if e["w"] == worker]
        assert mine == list(range(count))


@pytest.mark.parametrize("independent", [True, False], ids=["independent", "forked"])
def test_concurrent_writers_keep_backups_plus_one_files(tmp_path, independent):
    path = tmp_path / "app.log"
    run_writers(path, independent=independent, workers=3, count=1000, max_bytes=4096, backups=2)
    files = log_files(path)
    assert [f.name for f in files] == ["app.log", "app.log.1", "app.log.2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "app.log",
        "app.log.1",
        "app.log.2",
        "app.log.lock",
    ]
    assert all(f.stat().st_size <= 4096 for f in files)
    events = lines_of(files)
    assert len({(e["w"], e["n"]) for e in events}) == len(events)  # no line twice
    for worker in range(3):  # what is kept of each writer is its newest lines, none missing
        kept = sorted(e["n"] for e in events if e["w"] == worker)
        assert kept == list(range(kept[0], 1000)) if kept else True


# --- configured from the settings -----------------------------------------------------------


def test_the_file_gets_the_same_json_lines_as_stdout(tmp_path):
    path = tmp_path / "app.log"
    stream = io.StringIO()
    configure_logging(settings(FENDER_LOG_FILE=str(path)), fmt="json", stream=stream)
    get_logger("app").info("hello", password="hunter2")
    access_log().request("r" * 32, "GET", "/", 200, 1.0, 2, "10.0.0.1", "curl/8")
    configure_logging(settings())  # closes the file
    assert path.read_text().splitlines() == stream.getvalue().splitlines()
    assert "hunter2" not in path.read_text()
    assert [e["event"] for e in lines_of([path])] == ["hello", "request"]


def test_a_console_in_development_still_gets_json_in_the_file(tmp_path):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    path = tmp_path / "app.log"
    stream = Terminal()
    configure_logging(settings(FENDER_LOG_FILE=str(path)), stream=stream)
    get_logger("app").info("hello", user="bob")
    access_log().request("r" * 32, "GET", "/", 200, 1.0, 2, "10.0.0.1", "curl/8")
    configure_logging(settings())
    assert "\x1b[" in stream.getvalue()
    events = lines_of([path])
    assert [e["event"] for e in events] == ["hello", "request"]
    assert events[0]["user"] == "bob"


def test_the_size_and_backups_come_from_the_settings(tmp_path):
    path = tmp_path / "app.log"
    env = {
        "FENDER_LOG_FILE": str(path),
        "FENDER_LOG_FILE_MAX_MB": "0.001",
        "FENDER_LOG_FILE_BACKUPS": "2",
    }
    configure_logging(settings(**env), fmt="json", stream=io.StringIO())
    for n in range(100):
        get_logger("app").info("line", n=n)
    configure_logging(settings())
    files = log_files(path)
    assert [f.name for f in files] == ["app.log", "app.log.1", "app.log.2"]
    assert all(f.stat().st_size <= 1048 for f in files)  # 0.001 MiB


@pytest.mark.parametrize(
    ("where", "fragment"),
    [
        pytest.param("missing/app.log", "existing directory", id="missing-directory"),
        pytest.param(".", "append to", id="a-directory"),
    ],
)
def test_a_log_file_that_cannot_be_written_fails_at_start_up(tmp_path, where, fragment):
    with pytest.raises(ConfigurationError) as raised:
        configure_logging(settings(FENDER_LOG_FILE=str(tmp_path / where)), fmt="json")
    assert raised.value.field == "FENDER_LOG_FILE"
    assert fragment in raised.value.expected


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes any directory")
def test_an_unwritable_directory_fails_at_start_up(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(ConfigurationError) as raised:
        configure_logging(settings(FENDER_LOG_FILE=str(locked / "app.log")), fmt="json")
    assert raised.value.field == "FENDER_LOG_FILE"
    assert "can write" in raised.value.expected
