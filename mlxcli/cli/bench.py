"""``mlxcli bench``: measure the engine in-process, or any OpenAI-compatible server, side by side."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from mlxcli.cli import app
from mlxcli.cli.common import FastPathOption, exit_process, fail, json_schema_file

ENGINE_DEFAULTS = ("128,512", "64,128")  # prompt, generation lengths of the engine matrix
WORKLOADS = ("edit", "prose")  # bench/speculation.py's scenarios (not imported here: it imports the engine's request types)
SPEC_CLIENTS = {"edit": (1, 4), "prose": (1, 8)}
SPEC_GEN_TOKENS = {"edit": 1000, "prose": 128}
SERVER_DEFAULTS = ("128", "64")  # with --url or --turns


def int_list(text: str | None, option: str) -> list[int] | None:
    """``"1,4,8"`` → ``[1, 4, 8]``; every value a positive integer."""
    if text is None:
        return None
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}", param_hint=option) from None
    if not values or min(values) < 1:
        raise typer.BadParameter(f"expected positive integers, got {text!r}", param_hint=option)
    return values


@app.command()
def bench(
    model: Annotated[Optional[str], typer.Option(
        "--model", "-m", envvar="MLXCLI_MODEL",
        help="Model (in-process, and the tokenizer of the prompts): an alias, repo id, directory or .gguf file, or "
             "tiny:WIDTHxLAYERS (a random model with the default model's tokenizer, built once; "
             "`python -m mlxcli.bench.tiny tiny:WxL` prints its directory, to serve it on purpose).",
    )] = None,
    url: Annotated[Optional[str], typer.Option(help="Benchmark this server instead of the engine: its address, with or without /v1.")] = None,
    compare: Annotated[Optional[list[str]], typer.Option(help="Another server to run the same scenario against, interleaved (repeatable); ratios are to the first target.")] = None,
    engine: Annotated[bool, typer.Option("--engine", help="With --url: also run the model in-process, as the first target (what HTTP costs).")] = False,
    api: Annotated[str, typer.Option(help="Server protocol: chat, responses, anthropic or ollama.")] = "chat",
    request_model: Annotated[Optional[str], typer.Option(help="The `model` sent to servers (default: the first one GET /v1/models lists).")] = None,
    api_key: Annotated[Optional[str], typer.Option(envvar="MLXCLI_API_KEY", help="API key sent to servers.")] = None,
    prompt_tokens: Annotated[Optional[str], typer.Option(help="Prompt lengths in tokens, exact with the model's tokenizer (engine matrix default 128,512; otherwise 128).")] = None,
    gen_tokens: Annotated[Optional[str], typer.Option(help="Tokens to generate (engine matrix default 64,128; otherwise 64).")] = None,
    clients: Annotated[Optional[str], typer.Option(help="Concurrent streaming clients, one level each (server; default 1,4,8; edit 1,4; prose 1,8).")] = None,
    requests: Annotated[Optional[int], typer.Option(min=1, help="Requests per level and run (default: one per client).")] = None,
    turns: Annotated[Optional[int], typer.Option(min=1, help="Instead: one conversation growing for N turns; time to first token per turn.")] = None,
    scenario: Annotated[Optional[str], typer.Option(help="agent: a long prompt (--long-tokens), a short request (--prompt-tokens, --gen-tokens; default 700, 32) sent beside it and a stream answering meanwhile; each side's slowdown and the stream's inter-token gaps. "
                                                         "edit: a file sent back with one rename (--file-lines; --gen-tokens default 1000); prose: a story continued (--prompt-tokens, --gen-tokens; default 128, 128): speculative decoding against none, greedy, with whether the answers are the same.")] = None,
    long_tokens: Annotated[int, typer.Option(min=16, help="With --scenario agent: the long prompt's length in tokens.")] = 7500,
    file_lines: Annotated[int, typer.Option(min=10, max=2000, help="With --scenario edit: the file's length in lines.")] = 60,
    speculative: Annotated[Optional[str], typer.Option(help="With --scenario edit or prose: what the in-process engine speculates with besides --draft-model ('ngram': prompt lookup; default unless --draft-model is given).")] = None,
    draft_model: Annotated[Optional[str], typer.Option(help="With --scenario edit or prose: a draft model (same tokenizer) for the in-process engine.")] = None,
    embeddings: Annotated[bool, typer.Option("--embeddings", help="Instead: embeddings inputs/s and tokens/s at each --batch-sizes (model default minilm; --prompt-tokens per input, default 64).")] = False,
    batch_sizes: Annotated[str, typer.Option(help="With --embeddings: inputs per request, one level each.")] = "1,16,64",
    repeat: Annotated[int, typer.Option(min=1, help="Measured runs of each case (medians and ranges over them).")] = 3,
    warmup: Annotated[int, typer.Option(min=0, help="Unmeasured runs first (engine: per case; server: per target).")] = 1,
    seed: Annotated[Optional[int], typer.Option(min=0, help="First prompt seed, to send the same prompts again (default: random, so no server cache has seen them).")] = None,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds a server request may take.")] = 600.0,
    image_size: Annotated[Optional[int], typer.Option(min=14, max=4096, help="Send an image of this many pixels square (random pixels) with each request, to a vision model.")] = None,
    image_turns: Annotated[str, typer.Option(help="With --turns and --image-size: every (each turn sends a new image, as an agent sends a screenshot per step) or first (one image, in the first turn: a conversation about it).")] = "every",
    json_schema: Annotated[Optional[Path], typer.Option(help="Also run every request constrained to the JSON Schema in this file, interleaved with the free ones (load and turns scenarios).")] = None,
    fast_path: bool = FastPathOption,
    json_out: Annotated[bool, typer.Option("--json", help="Print the results as JSON (schema mlxcli.bench/1) instead of tables.")] = False,
    output: Annotated[Optional[Path], typer.Option(help="Also write the JSON results to this file.")] = None,
) -> None:
    """Measure prefill and decode speed, time to first token and memory — of the engine, or of servers.

    Without --url: the engine in-process, for every prompt length × generation length.
    With --url (and --compare): concurrent streaming clients at each --clients level.
    With --turns: one conversation growing turn by turn, on the engine or the servers.
    With --embeddings: embeddings requests of each batch size, on the engine and/or the servers.
    With --scenario edit or prose: the engine without speculative decoding, then with it (docs/speculation.md).
    """
    from mlxcli.engine import platform

    platform.configure(fast_path)  # before anything imports mlx
    servers = [u for u in [url, *(compare or [])] if u]
    if compare and not url:
        raise typer.BadParameter("--compare needs --url (the first server)", param_hint="--compare")
    if embeddings:
        sizes, lengths = int_list(batch_sizes, "--batch-sizes"), int_list(prompt_tokens or "64", "--prompt-tokens")
        if len(lengths) > 1:
            raise typer.BadParameter("--embeddings takes one input length", param_hint="--prompt-tokens")
        in_process = engine or not servers
        code = _embeddings(model or "minilm", servers, in_process=in_process, sizes=sizes, input_tokens=lengths[0],
                           repeat=repeat, warmup=warmup, seed=random.randrange(1_000_000) if seed is None else seed,
                           request_model=request_model, api_key=api_key, timeout=timeout, json_out=json_out, output=output)
        if in_process:
            exit_process(code)  # the engine ran here: skip the teardown MLX may abort in
        raise typer.Exit(code)
    from mlxcli.client import NAMES

    if api not in NAMES:
        raise typer.BadParameter(f"{api!r} is not one of {', '.join(NAMES)}", param_hint="--api")
    defaults = SERVER_DEFAULTS if servers or turns else ENGINE_DEFAULTS
    prompt_lens = int_list(prompt_tokens or defaults[0], "--prompt-tokens")
    gen_lens = int_list(gen_tokens or defaults[1], "--gen-tokens")
    if scenario not in (None, "agent", *WORKLOADS):
        raise typer.BadParameter(f"{scenario!r} is not a scenario (agent, {', '.join(WORKLOADS)})", param_hint="--scenario")
    if speculative not in (None, "ngram"):
        raise typer.BadParameter(f"{speculative!r} is not a speculation mode (ngram)", param_hint="--speculative")
    levels = int_list(clients or (",".join(map(str, SPEC_CLIENTS[scenario])) if scenario in WORKLOADS else "1,4,8"), "--clients")
    if scenario == "agent":
        prompt_lens, gen_lens = int_list(prompt_tokens or "700", "--prompt-tokens"), int_list(gen_tokens or "32", "--gen-tokens")
    if scenario in WORKLOADS:
        prompt_lens = int_list(prompt_tokens or "128", "--prompt-tokens")
        gen_lens = int_list(gen_tokens or str(SPEC_GEN_TOKENS[scenario]), "--gen-tokens")
    scenario = scenario or ("turns" if turns else "load" if servers else "engine")
    if scenario == "turns" and (len(prompt_lens) > 1 or len(gen_lens) > 1):
        raise typer.BadParameter("--turns takes one prompt length and one generation length", param_hint="--turns")
    if image_turns not in ("every", "first"):
        raise typer.BadParameter(f"{image_turns!r} is not every or first", param_hint="--image-turns")
    if json_schema is not None and scenario == "engine":
        raise typer.BadParameter("--json-schema compares concurrent clients: use it with --url (or --turns)", param_hint="--json-schema")
    response_format = json_schema_file(json_schema) if json_schema is not None else None

    err = Console(stderr=True)
    # Servers first: an unreachable one fails before the model is loaded.
    targets = _servers(servers, api=api, model=request_model, api_key=api_key, timeout=timeout, connections=max(levels))
    eng, code = None, 0
    try:
        # Both engine targets answer the same requests: no prompt cache, or the second would read its prompts from it.
        speculation = {"speculative": speculative or (None if draft_model else "ngram"), "draft_model": draft_model,
                       "prompt_cache_bytes": 0} if scenario in WORKLOADS else {}
        eng, count = _prepare(model, in_process=engine or not servers, max_clients=max(levels), **speculation)
        if eng is not None:
            from mlxcli.bench.targets import EngineTarget

            if scenario in WORKLOADS:  # the same engine measured without speculation, then with
                from mlxcli.bench.speculation import Unspeculated

                mode = "+".join(m for m in (speculation["speculative"], "draft" if draft_model else None) if m)
                speculating = EngineTarget(eng, name=f"engine +{mode}")
                targets[:0] = [Unspeculated(EngineTarget(eng), name="engine (plain)"), speculating]
            else:
                targets.insert(0, EngineTarget(eng))
        if response_format is not None:
            from mlxcli.bench.targets import ConstrainedTarget

            targets = [t for target in targets for t in (target, ConstrainedTarget(target, response_format))]
        report = _run(
            scenario, targets, count, err,
            prompt_lens=prompt_lens, gen_lens=gen_lens, levels=levels, requests=requests, turns=turns,
            repeat=repeat, warmup=warmup, seed=random.randrange(1_000_000) if seed is None else seed, image_size=image_size,
            image_turns=image_turns, long_tokens=long_tokens, file_lines=file_lines,
            settings={"api": api if servers else None, "timeout_s": timeout, "image_size": image_size,
                      "image_turns": image_turns if image_size and scenario == "turns" else None},
        )
        _write(report.to_json(), json_out=json_out, output=output)
    except ValueError as exc:  # e.g. a prompt length this tokenizer cannot reach
        code = _error(str(exc), 1)
    except KeyboardInterrupt:
        code = _error("interrupted", 130)
    except typer.Exit as exc:  # fail() said why
        code = exc.exit_code
    finally:
        for target in targets:
            target.close()
        if eng is not None:
            eng.stop(grace=0)
    if eng is not None:
        exit_process(code)  # the engine ran here: skip the teardown MLX may abort in
    if code:
        raise typer.Exit(code)


def _embeddings(model: str, servers: list[str], *, in_process: bool, sizes: list[int], input_tokens: int, repeat: int,
                warmup: int, seed: int, request_model: str | None, api_key: str | None, timeout: float, json_out: bool,
                output: Path | None) -> int:
    """The embeddings scenario; returns the exit status."""
    from mlxcli.bench import embeddings as bench_embeddings
    from mlxcli.bench.report import Report
    from mlxcli.client import Client
    from mlxcli.core.errors import MlxcliError
    from mlxcli.engine.engine import MlxEngine
    from mlxcli.engine.kinds import served_model
    from mlxcli.engine.settings import EngineSettings
    from mlxcli.models import resolve_model

    targets: list = []
    eng = None
    try:
        resolved = resolve_model(model)
        for url in servers:
            client = Client(url, api_key=api_key, timeout=timeout)
            targets.append(bench_embeddings.HttpEmbedder(client, request_model or resolved.name, client.root.split("://", 1)[1]))
        served = served_model(resolved.name, resolved.path, EngineSettings())
        if in_process:
            eng = MlxEngine([served], EngineSettings()).start()
            targets.insert(0, bench_embeddings.EngineEmbedder(eng, resolved.name))
        cells = bench_embeddings.run(targets, served.tokenizer.encode, batches=sizes, input_tokens=input_tokens,
                                     repeat=repeat, warmup=warmup, seed=seed)
    except (MlxcliError, ValueError) as exc:
        return _error(getattr(exc, "message", str(exc)), 1)
    except KeyboardInterrupt:
        return _error("interrupted", 130)
    finally:
        for target in targets:
            if isinstance(target, bench_embeddings.HttpEmbedder):
                target.client.close()
        if eng is not None:
            eng.stop(grace=0)
    settings = {"batch_sizes": sizes, "input_tokens": input_tokens, "repeat": repeat, "warmup": warmup, "seed": seed,
                "timeout_s": timeout}
    _write(Report("embeddings", settings, [t.describe() for t in targets], cells).to_json(), json_out=json_out, output=output)
    return 0


def _error(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _prepare(model: str | None, *, in_process: bool, max_clients: int, **speculation):
    """The in-process engine (or None) and a token counter for building prompts."""
    from mlxcli.bench import tiny
    from mlxcli.core.errors import MlxcliError
    from mlxcli.engine.settings import EngineSettings
    from mlxcli.models import resolve_model

    try:
        resolved = tiny.tiny_model(model) if tiny.is_tiny(model) else resolve_model(model)
        if _is_embedding_model(resolved.path):
            fail(f"{resolved.name} is an embedding model: measure it with mlxcli bench --embeddings")
        if in_process:
            from mlxcli.engine.engine import MlxEngine

            settings = EngineSettings(max_queue=max(32, max_clients), max_batch=max(16, max_clients), **speculation)
            eng = MlxEngine.from_path(resolved.name, resolved.path, settings).start()
            return eng, eng.count_tokens
        from mlxcli.engine.tokens import PromptCounter

        return None, PromptCounter(resolved.path)
    except MlxcliError as exc:
        fail(exc.message)


def _is_embedding_model(path: Path) -> bool:
    from mlxcli.engine.embeddings.model import embedding_config
    from mlxcli.engine.loading import read_config

    return embedding_config(path, read_config(path)) is not None


def _servers(urls: list[str], **options):
    from mlxcli.bench.targets import HttpTarget
    from mlxcli.core.errors import InvalidRequest, MlxcliError

    targets, names = [], set()
    for i, url in enumerate(urls):
        try:
            target = HttpTarget(url, **options)
        except MlxcliError as exc:
            for t in targets:
                t.close()
            if isinstance(exc, InvalidRequest):  # not a server address
                raise typer.BadParameter(exc.message, param_hint="--url/--compare") from None
            fail(exc.message)
        if target.name in names:  # the same server twice: keep the rows apart
            target.name = f"{target.name} #{i + 1}"
        names.add(target.name)
        targets.append(target)
    return targets


def _run(scenario, targets, count, err: Console, *, prompt_lens, gen_lens, levels, requests, turns, repeat, warmup, seed, image_size,
         image_turns, long_tokens, file_lines, settings):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mlxcli.bench import scenarios
    from mlxcli.bench.prompts import PromptSet
    from mlxcli.bench.report import Report

    prompts = PromptSet(count, first_seed=seed, image_size=image_size)
    n = len(targets)
    if scenario == "engine":
        total = len(prompt_lens) * len(gen_lens) * (warmup + repeat)
    elif scenario == "load":
        per_combo = sum(repeat * (requests or c) for c in levels)
        total = n * (warmup + len(prompt_lens) * len(gen_lens) * per_combo)
    elif scenario == "agent":
        total = n * (warmup + repeat)
    elif scenario in WORKLOADS:
        total = n * (warmup + repeat * sum(levels))
    else:
        total = n * (warmup + repeat * turns)
    progress = Progress(
        TextColumn("[bold]bench[/] {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, disable=not err.is_terminal,
    )
    with progress:
        task = progress.add_task(f"{scenario}: {n} target{'s' if n > 1 else ''}", total=total)

        def tick() -> None:
            progress.advance(task)

        if scenario == "engine":
            cells = scenarios.engine_matrix(
                targets[0], prompts, prompt_lens=prompt_lens, gen_lens=gen_lens, repeat=repeat, warmup=warmup, tick=tick
            )
        elif scenario == "load":
            cells = scenarios.load(
                targets, prompts, clients=levels, prompt_lens=prompt_lens, gen_lens=gen_lens,
                requests=requests, repeat=repeat, warmup=warmup, tick=tick,
            )
        elif scenario == "agent":
            from mlxcli.bench.agent import agent

            cells = agent(targets, prompts, long_tokens=long_tokens, prompt_tokens=prompt_lens[0], gen_tokens=gen_lens[0],
                          repeat=repeat, warmup=warmup, tick=tick)
        elif scenario in WORKLOADS:
            from mlxcli.bench import speculation

            cells = speculation.run(targets, scenario, prompts, clients=levels, gen_tokens=gen_lens[0], prompt_tokens=prompt_lens[0],
                                    repeat=repeat, warmup=warmup, file_lines=file_lines, tick=tick)
        else:
            cells = scenarios.turns(
                targets, prompts, turns=turns, prompt_tokens=prompt_lens[0], gen_tokens=gen_lens[0],
                repeat=repeat, warmup=warmup, images_after_first=image_turns == "every", tick=tick,
            )
    settings = {
        **settings,
        "prompt_tokens": prompt_lens,
        "gen_tokens": gen_lens,
        "clients": levels if scenario in ("load", *WORKLOADS) else None,
        **({"file_lines": file_lines} if scenario == "edit" else {}),
        "requests": requests if scenario == "load" else None,
        "turns": turns,
        "repeat": repeat,
        "warmup": warmup,
        "seed": seed,
        "temperature": 0.0,
    }
    notes = []
    if scenario in ("load", "turns"):
        notes = [
            f"{c.target}: no usage reported, output tokens counted from streamed chunks"
            for c in cells
            if scenarios.token_source(c.results) == "chunks"
        ]
        notes = list(dict.fromkeys(notes))
    return Report(scenario, settings, [t.describe() for t in targets], cells, notes)


def _write(doc: dict, *, json_out: bool, output: Path | None) -> None:
    import orjson

    from mlxcli.bench.report import render

    data = orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"
    if output is not None:
        try:
            output.write_bytes(data)
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror or exc}")
    if json_out:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        Console(width=None if sys.stdout.isatty() else 240).print(render(doc))
