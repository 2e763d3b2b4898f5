"""The server under soak: the echo script's scripted model (tests/support/scripted_server.py) behind the real
`mlxcli serve`, beside a tiny random vision model, a tiny embedding model and a tiny chat model that is only
loaded now and then (a model swap). Its store and prompt-cache directories live in the run's folder, so a
restart after the crash leg's SIGKILL opens the same ones. Read from /proc (Linux) and /health."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.process import free_port
from tests.support.soak.mix import EMBEDDING, VISION
from tests.support.soak.record import Sample

REPO = Path(__file__).resolve().parents[3]
SWAP = "soak-llama"  # the chat model a swap loads (evicting another) and unloads


@dataclass
class Models:
    tokenizer: Path  # SmolLM2's directory: the scripted model's tokenizer and chat template
    served: dict[str, Path]  # the other served models, by served name (their directories' names)

    @property
    def weight_bytes(self) -> int:
        """What every model's weights take, all loaded at once (the scripted model has none)."""
        return sum(f.stat().st_size for d in self.served.values() for f in d.glob("*.safetensors"))


def build_models(home: Path, folder: Path) -> Models:
    """The tests' tiny random models, built into ``folder`` (seconds), on the tokenizers pulled into ``home``."""
    from mlxcli.engine import platform

    platform.configure(True)  # before anything imports mlx
    from mlxcli.models import pull
    from tests.support.embedding_models import make_tiny_bert_dir
    from tests.support.models import make_tiny_model_dir
    from tests.support.vision_models import make_tiny_vlm_dir

    tokenizer = pull("smollm2-135m", home=home).path
    served = {VISION: folder / VISION, EMBEDDING: folder / EMBEDDING, SWAP: folder / SWAP}
    make_tiny_vlm_dir(tokenizer, served[VISION])
    make_tiny_bert_dir(pull("minilm", home=home).path, served[EMBEDDING])
    make_tiny_model_dir(tokenizer, served[SWAP])
    return Models(tokenizer, served)


class SoakServer:
    def __init__(self, out: Path, models: Models, flags: list[str], home: Path):
        self.out, self.home = out, home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cache_dir = out / "prompt-cache"
        self.store_path = out / "store.db"
        self.command = [
            sys.executable, "-m", "tests.support.scripted_server", "--script", "echo", "--tokenizer", str(models.tokenizer),
            "--port", str(self.port), "--store-path", str(self.store_path), "--conversation-dir", str(out / "conversations"),
            "--prompt-cache-dir", str(self.cache_dir), *(a for d in models.served.values() for a in ("--model", str(d))), *flags,
        ]
        self.life = 0
        self.proc: subprocess.Popen | None = None
        self.ready = threading.Event()  # set while the mix may use the server (after the warm-up); the crash leg clears it
        self.http = httpx.Client(base_url=self.url, timeout=30)

    @property
    def log_path(self) -> Path:
        return self.out / f"server-{self.life}.log"

    def start(self, timeout: float = 600) -> float:
        """Start (again, on the same directories); returns the seconds it took to answer /health. The caller sets
        ``ready`` once it has warmed the server up."""
        self.life += 1
        started = time.monotonic()
        env = {**os.environ, "MLXCLI_HOME": str(self.home), "PYTHONPATH": str(REPO)}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            try:
                if self.http.get("/health", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.proc.kill()
        raise TimeoutError(f"the server did not answer in {timeout:g}s:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: nothing is flushed, saved or closed."""
        self.ready.clear()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM, as a user stops it; its exit status, or None if it had to be killed."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        finally:
            self.http.close()

    def health(self) -> dict:
        return self.http.get("/health").json()

    def sample(self, t: float, quiet: bool) -> Sample:
        health = self.health()
        cache = health["prompt_cache"]
        disk = cache.get("disk") or {}
        pid = self.proc.pid
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
        store = sum(p.stat().st_size for p in self.out.glob(self.store_path.name + "*") if p.is_file())
        return Sample(
            t=round(t, 2), life=self.life, quiet=quiet,
            rss_bytes=int(status["VmRSS"].split()[0]) * 1024, fds=len(os.listdir(f"/proc/{pid}/fd")),
            threads=int(status["Threads"]), in_flight=health["in_flight"], queue_depth=health["queue_depth"],
            active_requests=health["active_requests"], cache_entries=cache["entries"], cache_bytes=cache["bytes"],
            disk_entries=disk.get("entries", 0), disk_bytes=disk.get("bytes", 0), store_bytes=store,
            loaded_models=health["loaded_models"],
        )
