"""A local server's CPU time from /proc: the process listening on a port, its CPU seconds with its
children's, each thread's."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from mlxcli.bench import procstat

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")


@pytest.fixture(params=[socket.AF_INET, socket.AF_INET6])
def listener(request):
    family = request.param
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
    except OSError:
        pytest.skip("no loopback for this address family")
    sock.listen()
    yield sock
    sock.close()


def test_the_process_listening_on_a_port_is_found(listener):
    port = listener.getsockname()[1]
    host = "127.0.0.1" if listener.family == socket.AF_INET else "[::1]"
    assert procstat.listening_pid(port) == os.getpid()
    assert procstat.server_pid(f"http://{host}:{port}/v1") == os.getpid()
    assert procstat.server_pid(f"http://localhost:{port}") == os.getpid()


def test_nothing_listening_or_another_machine_is_unknown(listener):
    port = listener.getsockname()[1]
    listener.close()
    assert procstat.listening_pid(port) is None
    assert procstat.server_pid("http://192.0.2.1:8000") is None  # TEST-NET-1: never this machine


def _burn(seconds: float) -> None:
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass


def test_cpu_seconds_count_the_process_and_its_children():
    before = procstat.cpu_seconds(os.getpid())
    _burn(0.3)
    assert procstat.cpu_seconds(os.getpid()) - before >= 0.2  # clock ticks: 10 ms
    child = subprocess.Popen([sys.executable, "-c", "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\n"
                              "input()"], stdin=subprocess.PIPE)
    try:
        while (procstat.cpu_seconds(child.pid) or 0) < 0.4:  # until the child has burnt its share
            time.sleep(0.05)
        assert procstat.cpu_seconds(os.getpid()) >= procstat.cpu_seconds(child.pid) + before
    finally:
        child.communicate(b"\n", timeout=30)
    assert procstat.cpu_seconds(child.pid) is None  # gone


def test_each_thread_has_its_own_time():
    burnt, leave = threading.Event(), threading.Event()

    def work() -> None:
        start = time.thread_time()
        while time.thread_time() - start < 0.3:
            pass
        burnt.set()
        leave.wait()

    worker = threading.Thread(target=work)
    worker.start()
    burnt.wait()
    seconds = procstat.thread_seconds(os.getpid())
    leave.set()
    worker.join()
    assert seconds[worker.native_id] >= 0.2 and threading.get_native_id() in seconds
