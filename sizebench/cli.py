"""The command line: parse, build a plan, call. Heavy libraries are imported inside the commands."""

from __future__ import annotations

import shlex
import signal
from dataclasses import replace
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer
from typer.exceptions import TyperException
from rich.console import Console

from sizebench.engines import DEFAULT as DEFAULT_ENGINE
from sizebench.errors import SizebenchError
from sizebench.planning.settings import DEFAULT_MARGIN

_python_warning = warnings.formatwarning
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="Compare language models of different sizes: answers, accuracy, latency, memory.")
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False)

DEFAULT_PROMPTS = "prompts/geography.txt"
RESULTS = typer.Option("results", "--results", help="Folder of runs (results/runs/<id>) and the report.")
REPORT = typer.Option("report.md", "--report", help="File name of the report in --results (plots of another "
                      "name than report.md take its stem as prefix, so two reports keep their own).")
MODELS = typer.Option("offline", "--models", "-m",
                      help="Group (offline, all), comma list of names, hub id, model folder or .gguf path; "
                           "NAME@PRECISION (fp32, bf16, fp16, int8, int4, nf4), a ladder: offline@fp32,bf16,int8; "
                           "ENGINE:NAME[@TYPE] on another engine: llama.cpp:offline@q8_0,q2_k (`sizebench models`).")
ENGINES = typer.Option(DEFAULT_ENGINE, "--engines", help="Comma list of engines each model without an ENGINE: prefix "
                       "runs on, at its default type: transformers,llama.cpp.")
DEVICE = typer.Option("auto", help="auto | cpu | cuda (auto: cuda when available).")
DTYPE = typer.Option("auto", help="auto | float32 | bfloat16 | float16 (auto: fp32 on CPU; on GPU bf16, or fp16 "
                                   "where the GPU has no bf16).")
NO_OFFLOAD = typer.Option(False, "--no-offload", help="On GPU, refuse a model that does not fit the GPUs instead of "
                          "putting some of its layers in CPU RAM.")
HUB_KERNELS = typer.Option(False, "--hub-kernels", help="Let transformers replace layers by kernels it fetches "
                           "from the Hugging Face Hub at load (binary code; needs the network). Off by default.")
WEIGHTS = typer.Option("real", "--weights", help="real | random: random weights built from each model's config "
                       "(no download), a cost-only rung: load, memory and speed; the prompt suite, throughput batch "
                       "and load sweep run, tasks and agreement do not, and answers are never scored.")
FORCE = typer.Option(False, "--force", help="Load even when the memory guard says it will not fit.")
THREADS = typer.Option(None, help="torch threads in each worker (default: torch's choice).")
MAX_NEW = typer.Option(128, "--max-new-tokens", help="Generation length limit per answer.")
REPEAT = typer.Option(1, help="Timed runs per prompt; figures are medians, the answer is the first run's.")
BATCH = typer.Option(1, "--batch-size", help="Also measure aggregate tokens/s with batches of this size.")
SEED = typer.Option(0, help="Seed set before every generation.")
SAMPLE = typer.Option(False, "--sample", help="Sample instead of greedy decoding.")
TEMP = typer.Option(1.0, "--temperature", help="Sampling temperature (with --sample).")
TOP_P = typer.Option(1.0, "--top-p", help="Nucleus sampling mass (with --sample).")
TOP_K = typer.Option(50, "--top-k", help="Top-k sampling (with --sample); 0 turns it off. 50 is transformers' default.")
DECODING = typer.Option(None, "--decoding", help="A named preset: greedy, or databricks (Databricks' Dolly pipeline: "
                        "sampling, top-p 0.92, top-k off, 256 new tokens, stop at `### End` only). Sets the flags above.")
DECODE = typer.Option("auto", "--decode", help="transformers rungs' decode loop: static (a KV cache preallocated "
                      "for the suite and a compiled forward, CUDA graphs on a GPU), eager (generate's default "
                      "loop), or auto: static on CUDA, eager on CPU (measured: benchmarks/RESULTS.md).")
TASKS = typer.Option("sizebench_geo", "--tasks", help="Comma list of lm-eval tasks or groups; dolly-card for the Dolly card suite.")
TASK_PATH = typer.Option(None, "--task-path", help="Folder of your own lm-eval YAML tasks.")
LIMIT = typer.Option(None, "--limit", help="Items per task (a fraction if < 1).")
FEWSHOT = typer.Option(None, "--num-fewshot", help="Few-shot examples per item (default: the task's own).")
EVAL_BATCH = typer.Option("auto", "--eval-batch-size", help="lm-eval batch size, or auto.")
EXECUTOR = typer.Option("local", "--executor", help="local | ray")
TIMEOUT = typer.Option(None, "--timeout", metavar="SECONDS",
                       help="Time limit per model and stage (load, prompts, tasks); past it the model is recorded "
                            "as failed, what it finished is kept, and the sweep goes on. Default: none.")
RAY_ADDRESS = typer.Option(None, "--ray-address", envvar="RAY_ADDRESS", help="Ray cluster address; auto for an existing one.")
MARGIN = typer.Option(DEFAULT_MARGIN, "--margin", help="Accuracy a smaller model may lose to the best and still be recommended "
                      "(upper 95% bound of best - model below it).")
BASELINE = typer.Option(None, "--baseline", metavar="MODEL", help="The rung every other rung is compared with "
                        "in the verdicts (default: the largest, the most bits per weight among equals).")
CONCURRENCY = typer.Option(None, "--concurrency", help="Load sweep of served rungs (llama.cpp-server:, vllm:, openai:): "
                           "closed loop at each of these requests in flight, e.g. 1,2,4,8.")
REQUEST_RATE = typer.Option(None, "--request-rate", help="Load sweep with Poisson arrivals at each of these rates (requests/s).")
SLO = typer.Option(None, "--slo", help="Latency goal for goodput, seconds per request: ttft=0.5,tpot=0.05,e2e=5.")
SWEEP_REQUESTS = typer.Option(32, "--sweep-requests", help="Requests per load level, at most.")
SWEEP_SECONDS = typer.Option(60.0, "--sweep-seconds", help="Seconds per load level, at most (no request sent after).")
SWEEP_TOKENS = typer.Option(32, "--sweep-output-tokens", help="Output tokens per sweep request (fixed where the server allows).")
SERVER_ARGS = typer.Option("", "--server-args", help="Extra flags for launched servers (vllm serve, llama-cpp-python), one string.")
UNTIL_DECIDED = typer.Option(False, "--until-decided", help="Each task's items in a seeded random order: every other "
                              "rung answers them all, then the baseline rung chunk by chunk until every comparison "
                              "with it is decided against --margin (an anytime-valid confidence sequence) or the "
                              "items run out.")
CHUNK = typer.Option(32, "--chunk", help="Items per chunk with --until-decided (larger keeps a GPU's batches full).")
MAX_ITEMS = typer.Option(None, "--max-items", help="With --until-decided: the baseline's items per task at most.")
MAX_SECONDS = typer.Option(None, "--max-seconds", metavar="SECONDS", help="With --until-decided: no new chunk of a "
                           "task once the baseline has spent this long on it.")
# What `bench --resume` honours: where the run and its report are, and how to finish it. Anything else would
# change a run already started, so it is refused rather than silently ignored.
RESUME_OPTIONS = ("resume", "results", "report_name", "margin", "baseline", "timeout", "executor", "ray_address")


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show Python tracebacks.")) -> None:
    pass


@app.command()
def models(models: str = typer.Option("offline,all", "--models", "-m", help="What to list.")) -> None:
    """List the model registry with each model's availability on this machine."""
    from sizebench.planning.registry import resolve
    from sizebench.weights.sources import availability
    from rich.table import Table

    table = Table(title="sizebench models")
    for column in ("name", "family", "params (total)", "non-emb", "source", "revision", "format", "dtype", "available"):
        table.add_column(column, overflow="fold")
    for spec in resolve(models):
        ok, where = availability(spec)
        table.add_row(spec.name, spec.family, f"{spec.params:,}" if spec.params else "?",
                      f"{spec.params_non_embedding:,}" if spec.params_non_embedding else "-",
                      f"{spec.source}: {spec.location}", spec.revision or "", spec.prompt_format, spec.precision or spec.dtype,
                      f"[green]yes[/] ({where})" if ok else f"[red]no[/] ({where})")
    out.print(table)
    from sizebench import engines

    kinds = Table(title="engines (ENGINE:MODEL@TYPE; transformers needs no prefix)")
    for column in ("engine", "types (@TYPE)", "without @TYPE"):
        kinds.add_column(column, overflow="fold")
    for name in engines.names():
        engine = engines.get(name)
        kinds.add_row(name, ", ".join(f"{t} ({words})" for t, words in engine.types().items()),
                      engine.default_type or "as distributed (transformers: the run's --dtype)")
    out.print(kinds)


def _plan(command, models, prompts=None, tasks="sizebench_geo", task_path=None, limit=None, num_fewshot=None,
          eval_batch_size="auto", device="auto", dtype="auto", force=False, threads=None, max_new_tokens=128,
          repeat=1, batch_size=1, seed=0, sample=False, temperature=1.0, top_p=1.0, executor="local",
          ray_address=None, top_k=50, decoding=None, no_offload=False, timeout=None, engines=DEFAULT_ENGINE, serve=None,
          reference=None, hub_kernels=False, baseline=None, decode="auto", weights="real", sequential=None, margin=DEFAULT_MARGIN):
    from sizebench import stages
    from sizebench.planning.settings import EvalSettings, GenSettings
    from sizebench.planning.plan import RunPlan
    from sizebench.planning.registry import resolve

    specs = tuple(resolve(models, _engines(engines)))
    if weights not in ("real", "random"):
        raise SizebenchError(f"--weights takes real or random, not '{weights}'")
    if weights == "random":
        from sizebench.planning.registry import with_random_weights

        specs = tuple(with_random_weights(s) for s in specs)
    if baseline is not None and baseline not in [s.name for s in specs]:
        raise SizebenchError(f"--baseline {baseline}: not one of --models ({', '.join(s.name for s in specs)})")
    plan = RunPlan(
        models=specs, stages=stages.of_command(command), prompts_path=prompts,
        gen=replace(GenSettings(max_new_tokens, repeat, seed, sample, temperature, top_p, batch_size, top_k),
                    decode=decode).with_preset(decoding),
        eval=replace(EvalSettings(tuple(t.strip() for t in tasks.split(",") if t.strip()), task_path, limit,
                                             num_fewshot, eval_batch_size), margin=margin, baseline=baseline,
                     **(sequential or {})),
        device=device, dtype=dtype, force=force, offload=not no_offload, hub_kernels=hub_kernels, threads=threads,
        executor=executor,
        ray_address=ray_address, timeout=timeout, reference=reference, **({"serve": serve} if serve else {}),
    )
    return _checked(replace(plan, stages=tuple(s.name for s in stages.chosen(plan.stages) if s.wanted(plan))))


def _checked(plan):
    """A new plan or a resumed run's stored one, checked the same way: every bad setting one line, before any load."""
    from sizebench import stages

    chosen = stages.chosen(plan.stages)
    plan = plan.validate()
    if plan.device == "cuda" and plan.executor == "local":
        from sizebench.measurement.measure import resolve_device

        resolve_device("cuda")  # no GPU here: a one-line error now, not a failed model later
    _check_engines(plan)
    for stage in chosen:
        stage.check(plan)
    return plan


def _engines(text: str) -> tuple[str, ...]:
    from sizebench import engines

    chosen = tuple(dict.fromkeys(e.strip() for e in text.split(",") if e.strip()))
    if not chosen:
        raise SizebenchError("--engines names no engine; choose from: " + ", ".join(engines.names()))
    for name in chosen:
        engines.get(name)  # an unknown engine: one line naming the known ones
    if "openai" in chosen:  # an endpoint is a model, not a way to run one
        raise SizebenchError("--engines cannot take openai: give the endpoint as a model, -m openai:URL#NAME")
    return chosen


def _check_engines(plan) -> None:
    """A rung its engine cannot run here (a backend missing, a device unfit): one line now, before any load."""
    from sizebench import engines
    from sizebench.measurement.measure import resolve_device

    where = resolve_device(plan.device) if plan.executor == "local" else plan.device  # Ray: nodes decide
    for spec in plan.models:
        engines.get(spec.engine).check(spec, where)


def _run(plan, results: str, resume: Optional[str] = None, executor: Optional[str] = None,
         ray_address: Optional[str] = None, timeout: Optional[float] = None,
         report_name: str = "report.md", margin: float = DEFAULT_MARGIN, baseline: Optional[str] = None) -> None:
    from sizebench import report
    from sizebench.launch import runner, supervise
    from sizebench.planning.plan import RunPlan
    from sizebench.runstore.store import RunStore

    if resume:
        store = RunStore.open(Path(results), resume)
        try:
            plan = RunPlan.from_dict(store.meta()["plan"])
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # a foreign or damaged run.json
            raise SizebenchError(f"{store.dir / 'run.json'} holds no plan this sizebench reads: "
                                 f"{type(exc).__name__}: {str(exc)[:200]}") from None
        if executor:  # a run started on one executor can be finished on another
            plan = replace(plan, executor=executor, ray_address=ray_address)
        if timeout is not None:  # a run stopped by a short --timeout can be finished with a longer one
            plan = replace(plan, timeout=timeout)
        plan = _checked(plan)  # run.json may come from anywhere: checked as a new plan is
        err.print(f"resuming run {store.run_id}; its run.json decides what runs:\n{plan.describe()}", highlight=False,
                  markup=False, emoji=False, soft_wrap=True)
    else:
        store = runner.new_run(plan, Path(results), "sizebench " + shlex.join(sys.argv[1:]))
        err.print(f"run {store.run_id}: {len(plan.models)} model(s), stages: {', '.join(plan.stages)}", highlight=False)
    with supervise.stop_signals():  # SIGTERM and SIGHUP stop the sweep as Ctrl-C does, worker included
        outcome = runner.execute(plan, store, err)
        published = any(r["kind"] == "load" for r in store.records())
        if published:
            report.publish([store.dir], Path(results), out, margin=margin, name=report_name, baseline=baseline)
        else:  # a report of nothing would replace a good one
            err.print(f"no model ran in run {store.run_id} (each was unavailable or failed before loading, reasons "
                      f"above); {Path(results) / report_name} was left as it was", highlight=False, soft_wrap=True)
    if outcome.unavailable:
        err.print(f"unavailable here: {', '.join(outcome.unavailable)} (not an error; reason and remedy above)",
                  highlight=False, soft_wrap=True)
    if outcome.interrupted:
        err.print(f"interrupted by {signal.Signals(outcome.signum).name}: resume with "
                  f"`sizebench bench --resume {store.run_id}`", highlight=False)
    elif outcome.failed:
        where = "the report" if published else "the lines above"
        err.print(f"failed: {', '.join(outcome.failed)} (reasons in {where}); "
                  f"retry them with `sizebench bench --resume {store.run_id}`", highlight=False)
    raise typer.Exit(outcome.exit_code)


@app.command()
def compare(prompts: str = typer.Option(DEFAULT_PROMPTS, "--prompts", "-p", help="Prompt suite (.txt or .jsonl)."),
            models: str = MODELS, engines: str = ENGINES, max_new_tokens: int = MAX_NEW, repeat: int = REPEAT,
            batch_size: int = BATCH,
            seed: int = SEED, sample: bool = SAMPLE, temperature: float = TEMP, top_p: float = TOP_P,
            top_k: int = TOP_K, decoding: Optional[str] = DECODING, decode: str = DECODE,
            device: str = DEVICE, dtype: str = DTYPE, force: bool = FORCE, no_offload: bool = NO_OFFLOAD,
            hub_kernels: bool = HUB_KERNELS,
            threads: Optional[int] = THREADS,
            executor: str = EXECUTOR, ray_address: Optional[str] = RAY_ADDRESS, results: str = RESULTS,
            timeout: Optional[float] = TIMEOUT, report_name: str = REPORT, margin: float = MARGIN,
            baseline: Optional[str] = BASELINE, weights: str = WEIGHTS) -> None:
    """Send a prompt suite to each model; answers side by side with latency and memory."""
    report_name, margin = _report_name(report_name), _margin(margin)
    _run(_plan("compare", models, prompts, device=device, dtype=dtype, force=force, threads=threads,
               max_new_tokens=max_new_tokens, repeat=repeat, batch_size=batch_size, seed=seed, sample=sample,
               temperature=temperature, top_p=top_p, executor=executor, ray_address=ray_address, top_k=top_k,
               decoding=decoding, no_offload=no_offload, timeout=timeout, engines=engines, hub_kernels=hub_kernels,
               baseline=baseline, decode=decode, weights=weights),
         results, report_name=report_name, margin=margin, baseline=baseline)


@app.command("eval")
def eval_(models: str = MODELS, engines: str = ENGINES, tasks: str = TASKS, task_path: Optional[str] = TASK_PATH,
          limit: Optional[float] = LIMIT, num_fewshot: Optional[int] = FEWSHOT, eval_batch_size: str = EVAL_BATCH,
          device: str = DEVICE, dtype: str = DTYPE, force: bool = FORCE, no_offload: bool = NO_OFFLOAD,
          hub_kernels: bool = HUB_KERNELS,
          threads: Optional[int] = THREADS,
          executor: str = EXECUTOR, ray_address: Optional[str] = RAY_ADDRESS, results: str = RESULTS,
          timeout: Optional[float] = TIMEOUT, report_name: str = REPORT, margin: float = MARGIN,
          baseline: Optional[str] = BASELINE, until_decided: bool = UNTIL_DECIDED, chunk: int = CHUNK,
          max_items: Optional[int] = MAX_ITEMS, max_seconds: Optional[float] = MAX_SECONDS) -> None:
    """Run lm-evaluation-harness tasks on each model (accuracy +- stderr)."""
    report_name, margin = _report_name(report_name), _margin(margin)
    _run(_plan("eval", models, tasks=tasks, task_path=task_path, limit=limit, num_fewshot=num_fewshot,
               eval_batch_size=eval_batch_size, device=device, dtype=dtype, force=force, threads=threads,
               executor=executor, ray_address=ray_address, no_offload=no_offload, timeout=timeout, engines=engines,
               hub_kernels=hub_kernels, baseline=baseline, margin=margin,
               sequential=_sequential(until_decided, chunk, max_items, max_seconds)),
         results, report_name=report_name, margin=margin, baseline=baseline)


def _sequential(until_decided: bool, chunk: int, max_items: Optional[int], max_seconds: Optional[float]) -> dict:
    return {"until_decided": until_decided, "chunk": chunk, "max_items": max_items, "max_seconds": max_seconds}


@app.command()
def bench(ctx: typer.Context, models: str = MODELS, engines: str = ENGINES,
          prompts: str = typer.Option(DEFAULT_PROMPTS, "--prompts", "-p"),
          tasks: str = TASKS, task_path: Optional[str] = TASK_PATH, limit: Optional[float] = LIMIT,
          num_fewshot: Optional[int] = FEWSHOT, eval_batch_size: str = EVAL_BATCH, max_new_tokens: int = MAX_NEW,
          repeat: int = REPEAT, batch_size: int = BATCH, seed: int = SEED, sample: bool = SAMPLE,
          temperature: float = TEMP, top_p: float = TOP_P, top_k: int = TOP_K, decoding: Optional[str] = DECODING,
          decode: str = DECODE, device: str = DEVICE, dtype: str = DTYPE, force: bool = FORCE, no_offload: bool = NO_OFFLOAD,
          hub_kernels: bool = HUB_KERNELS,
          threads: Optional[int] = THREADS,
          executor: Optional[str] = typer.Option(None, "--executor", help="local (default) | ray; with --resume, "
                                                 "finishes the run on this executor"),
          ray_address: Optional[str] = RAY_ADDRESS, results: str = RESULTS, report_name: str = REPORT,
          timeout: Optional[float] = typer.Option(None, "--timeout", metavar="SECONDS", help=TIMEOUT.help
                                                  + " With --resume, replaces the run's limit."),
          margin: float = MARGIN, baseline: Optional[str] = BASELINE, concurrency: Optional[str] = CONCURRENCY, request_rate: Optional[str] = REQUEST_RATE,
          slo: Optional[str] = SLO, sweep_requests: int = SWEEP_REQUESTS, sweep_seconds: float = SWEEP_SECONDS,
          sweep_output_tokens: int = SWEEP_TOKENS, server_args: str = SERVER_ARGS, weights: str = WEIGHTS,
          reference: Optional[str] = typer.Option(None, "--reference", metavar="MODEL", help="The rung every other "
                                                  "rung's next-token agreement is measured against (default: per "
                                                  "group sharing a tokenizer, its largest, most precise rung)."),
          until_decided: bool = UNTIL_DECIDED, chunk: int = CHUNK, max_items: Optional[int] = MAX_ITEMS,
          max_seconds: Optional[float] = MAX_SECONDS,
          resume: Optional[str] = typer.Option(None, "--resume", help="Continue this run id with its own settings; "
                                               "finished stages are kept. Takes only --timeout, --executor, "
                                               "--ray-address, --results, --report, --margin and --baseline.")) -> None:
    """The whole benchmark per model: load, prompt suite, lm-eval tasks, agreement with a reference rung; then
    the report."""
    report_name, margin = _report_name(report_name), _margin(margin)
    if resume:
        _refuse_run_options(ctx)
    from sizebench.planning import settings as run_settings

    serve = run_settings.ServeSettings(
        run_settings.parse_levels(concurrency, "--concurrency", True),
        run_settings.parse_levels(request_rate, "--request-rate", False), sweep_requests, sweep_seconds,
        sweep_output_tokens, run_settings.parse_slo(slo), seed, run_settings.parse_server_args(server_args))
    plan = None if resume else _plan(
        "bench", models, prompts, tasks, task_path, limit, num_fewshot, eval_batch_size, device, dtype,
        force, threads, max_new_tokens, repeat, batch_size, seed, sample, temperature, top_p,
        executor=executor or "local", ray_address=ray_address, top_k=top_k, decoding=decoding, no_offload=no_offload,
        timeout=timeout, engines=engines, serve=serve, reference=reference, hub_kernels=hub_kernels, baseline=baseline,
        decode=decode, weights=weights, sequential=_sequential(until_decided, chunk, max_items, max_seconds),
        margin=margin)
    _run(plan, results, resume, executor, ray_address, timeout, report_name, margin, baseline)


def _refuse_run_options(ctx: typer.Context) -> None:
    """A resumed run keeps the settings it started with: an option that would change them is an error."""
    given = [p.opts[0] for p in ctx.command.params if p.name not in RESUME_OPTIONS
             and getattr(ctx.get_parameter_source(p.name), "name", None) == "COMMANDLINE"]  # typer's own click
    if given:
        raise SizebenchError(f"--resume continues the run with the settings it started with; {', '.join(given)} "
                             f"cannot change them (with --resume: --timeout, --executor, --ray-address, --results, "
                             f"--report, --margin, --baseline)")


@app.command()
def report(runs: Optional[list[str]] = typer.Argument(None, help="Run ids or folders (default: the latest run)."),
           results: str = RESULTS, report_name: str = REPORT,
           every_run: bool = typer.Option(False, "--every-run", help="Keep a model measured in several runs once per run."),
           margin: float = MARGIN, baseline: Optional[str] = BASELINE,
           price_per_hour: Optional[float] = typer.Option(None, "--price-per-hour", help="Price of one device-hour; "
                                                          "adds money per million tokens to the cost table."),
           reference: Optional[str] = typer.Option(None, "--reference", metavar="MODEL", help="Show agreement "
                                                   "against this rung only (one whose distributions the run stored).")
           ) -> None:
    """Render the verdict, the terminal summary and results/report.md from stored runs."""
    from sizebench import report as report_module
    from sizebench.runstore.store import RunStore

    _margin(margin)
    if price_per_hour is not None and not price_per_hour > 0:
        raise SizebenchError(f"--price-per-hour must be a positive price, not {price_per_hour:g}")
    stores = [RunStore.open(Path(results), r) for r in runs] if runs else [RunStore.latest(Path(results))]
    report_module.publish([s.dir for s in stores], Path(results), out, latest_only=not every_run, margin=margin,
                          price_per_hour=price_per_hour, name=_report_name(report_name), reference=reference,
                          baseline=baseline)


@app.command()
def judge(run: str = typer.Argument(..., help="Run id or folder (as `sizebench report` takes)."), results: str = RESULTS,
          judge_model: Optional[str] = typer.Option(None, "--judge", metavar="MODEL", help="An LLM judge instead of the "
                                                    "page: any model expression (built-in, hub id, folder, .gguf)."),
          host: str = typer.Option("127.0.0.1", "--host", help="Address the page listens on: loopback (127.0.0.1, "
                                   "::1), or another with --allow-remote."),
          allow_remote: bool = typer.Option(False, "--allow-remote", help="Let --host be an address other machines "
                                            "reach (plain HTTP: anyone who sees the token there can vote)."),
          port: int = typer.Option(0, "--port", help="Port of the page (0: any free port)."),
          no_open: bool = typer.Option(False, "--no-open", help="Only print the page's URL; do not open a browser."),
          device: str = DEVICE, dtype: str = DTYPE, threads: Optional[int] = THREADS, force: bool = FORCE) -> None:
    """Blind side-by-side judging of a run's answers: a local page for people, or --judge MODEL."""
    from sizebench.judging import command

    store = command.open_run(results, run)
    if judge_model:
        from sizebench.judging.llm_judge import Settings

        command.judge_with_model(store, judge_model, Settings(device, dtype, threads, force), out, err)
    else:
        command.serve_page(store, host, port, not no_open, out, err, allow_remote)


def _margin(margin: float) -> float:
    if not 0 < margin < 1:
        raise SizebenchError(f"--margin must be between 0 and 1 (an accuracy difference), not {margin:g}")
    return margin


def _report_name(name: str) -> str:
    if Path(name).name != name or not name.endswith(".md"):
        raise SizebenchError(f"--report takes a file name ending in .md (it goes in --results), got '{name}'")
    return name


@app.command("plan")
def plan_(models: str = MODELS, engines: str = ENGINES,
          gpu: Optional[str] = typer.Option(None, "--gpu", help="Card sizes, one per GPU: 16GiB,16GiB (or T4, which "
                                            "has no bf16); the plan subtracts the CUDA context. Default: this machine."),
          ram: Optional[str] = typer.Option(None, "--ram", help="RAM for offloaded layers and CPU runs, e.g. 110GiB "
                                            "(default: free RAM here)."),
          dtype: str = DTYPE, context: Optional[int] = typer.Option(None, "--context", help="Tokens of KV cache per "
                                                                    "sequence (default 2048, or a shorter window)."),
          batch_size: int = typer.Option(1, "--batch-size", help="Sequences at once."),
          no_offload: bool = NO_OFFLOAD, json_out: bool = typer.Option(False, "--json", help="One JSON object.")) -> None:
    """Where each rung would go (one GPU, sharded, offloaded, refused) and what it needs, from configs alone."""
    import json

    from rich.table import Table

    from sizebench.planning import fit
    from sizebench.planning.plan import DTYPES
    from sizebench.planning.registry import resolve

    if dtype not in DTYPES:
        raise SizebenchError(f"--dtype must be one of {', '.join(DTYPES)}, not '{dtype}'")
    if (context is not None and context <= 0) or batch_size <= 0:
        raise SizebenchError("--context and --batch-size must be positive")
    where = fit.machine(gpu, ram)
    rows = fit.plan_rows(resolve(models, _engines(engines)), where, dtype, context, batch_size, not no_offload)
    if json_out:
        print(json.dumps({"machine": where.described, "context": context, "batch_size": batch_size,
                          "cuda_context_bytes": fit.CUDA_CONTEXT_BYTES, "rungs": [r.to_dict() for r in rows]},
                         indent=1))  # not rich's print_json: it wraps long strings at the console's width
        return

    def gib(value) -> str:
        return "-" if value is None else f"{value / 2**30:.2f}"

    table = Table(title=f"sizebench plan: {where.described}; KV cache for {context or 'up to 2048'} tokens x "
                        f"batch {batch_size}; total = weights + KV cache + activations + 5% allocator slack")
    for column in ("model", "dtype", "where", "weights GiB", "KV cache GiB", "activations GiB", "total GiB",
                   "budget GiB"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(r.model, r.dtype, "; ".join([r.where, *r.notes]), gib(r.weights_bytes), gib(r.kv_bytes),
                      gib(r.activation_bytes), gib(r.total_bytes), gib(r.budget_bytes))
    out.print(table)


@app.command()
def cache(remove: Optional[str] = typer.Option(None, "--remove", metavar="MODEL",
                                               help="Remove the entries whose model file name contains MODEL."),
          type_: Optional[str] = typer.Option(None, "--type", help="Only entries of this type (f32, q8_0, q4_k_m, ...) "
                                              "or kind (safetensors, llama.cpp, gguf, leftover)."),
          everything: bool = typer.Option(False, "--all", help="Remove every entry (of --type, if given).")) -> None:
    """List the weights sizebench has converted and cached (GGUF -> safetensors, llama.cpp types), or remove some."""
    from sizebench.weights import cache as weights_cache

    if remove is not None and everything:
        raise SizebenchError("give --remove MODEL or --all, not both")
    if remove is None and not everything:
        out.print(weights_cache.table(weights_cache.select(type=type_)))
        return
    out.print(weights_cache.remove(remove, type_, everything).summary(), markup=False, soft_wrap=True)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A skipped or repaired record is said in one line, as the errors are; other warnings as Python says them."""
    from sizebench.runstore.jsonl import StoreWarning

    if issubclass(category, StoreWarning):
        return f"warning: {message}\n"
    return _python_warning(message, category, filename, lineno, line)


def main() -> None:
    debug = "--debug" in sys.argv
    warnings.formatwarning = _one_line_warning
    try:
        code = app(standalone_mode=False)  # typer.Exit comes back as the return value here
        sys.exit(code if isinstance(code, int) else 0)
    except SizebenchError as exc:
        if debug:
            raise
        err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except TyperException as exc:  # typer's own usage errors: unknown option, bad number, ...
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        err.print(f"error: {message}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt) as exc:
        signum = getattr(exc, "signum", signal.SIGINT)  # supervise.Signalled carries SIGTERM or SIGHUP
        err.print(f"interrupted by {signal.Signals(signum).name}", highlight=False)
        sys.exit(128 + signum)
    except Exception as exc:  # a bug of ours: still one line, the traceback behind --debug
        if debug:
            raise
        err.print(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
                  highlight=False, markup=False, soft_wrap=True)
        sys.exit(1)
