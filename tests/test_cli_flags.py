"""The run commands' options are made from the run plan's fields: each default lives on its field, a flag's stage
decides which commands offer it, and the plan the command line makes holds what was given."""

from dataclasses import fields

from typer.testing import CliRunner

from sizebench.cli import app
from sizebench.cli import options
from sizebench.specs.flags import flag_of
from sizebench.planning.plan import RunPlan
from sizebench.specs.settings import EvalSettings, GenSettings, ServeSettings
from sizebench.stages import STAGES


def defaults(command: str) -> dict:
    return {o.flag.param: o.default for o in options.options(command)}


def test_every_flag_names_a_registered_stage_and_every_run_command_has_its_stages_flags():
    for path, each, _ in options.plan_fields():
        stage = flag_of(each).stage
        assert stage is None or stage in STAGES, path
    assert options.run_commands() == ("compare", "bench", "eval")
    for command in options.run_commands():
        params = [o.flag.param for o in options.options(command)]
        assert len(params) == len(set(params)), command


def test_the_command_line_s_defaults_are_the_plan_s():
    for command in options.run_commands():
        plan = options.plan_of(command, defaults(command), ("prompts",))
        assert (plan.gen, plan.eval, plan.serve) == (GenSettings(), EvalSettings(), ServeSettings()), command
        for each in fields(RunPlan):
            if each.name not in ("models", "stages", "gen", "eval", "serve", "prompts_path"):
                assert getattr(plan, each.name) == each.default, (command, each.name)
        # the one field whose command-line default is not its own: the prompt suite a prompts stage needs
        assert plan.prompts_path == (None if command == "eval" else "prompts/geography.txt")


def test_values_given_reach_their_fields_parsed_inverted_and_shared():
    values = {
        **defaults("bench"),
        "seed": 7,
        "concurrency": "1,4",
        "slo": "ttft=0.5",
        "no_offload": True,
        "tasks": "a, b",
        "decoding": "databricks",
        "until_decided": True,
        "chunk": 8,
    }
    plan = options.plan_of("bench", values, ("prompts", "tasks", "sweep"))
    assert plan.gen.seed == plan.serve.seed == 7  # --seed sets both fields that carry it
    assert plan.serve.concurrency == (1, 4) and plan.serve.slo == (("ttft", 0.5),)
    assert plan.offload is False and plan.eval.tasks == ("a", "b")
    assert plan.gen.preset == "databricks" and plan.gen.top_p == 0.92 and plan.gen.max_new_tokens == 256
    assert plan.eval.until_decided and plan.eval.chunk == 8


def test_each_command_offers_the_flags_of_its_stages_only():
    runner = CliRunner()
    helps = {c: runner.invoke(app, [c, "--help"], terminal_width=200).output for c in options.run_commands()}
    assert "--until-decided" in helps["eval"] and "--prompts" not in helps["eval"]
    assert "--tasks" not in helps["compare"] and "--concurrency" not in helps["compare"]
    assert all(f in helps["bench"] for f in ("--prompts", "--tasks", "--concurrency", "--reference", "--resume"))
    resume_flags = [o.flag.name for o in options.options("bench") if o.flag.resume and o.flag.name != "--resume"]
    assert resume_flags == [
        "--margin",
        "--baseline",
        "--executor",
        "--ray-address",
        "--timeout",
        "--results",
        "--report",
    ]
