"""Energy counters: RAPL read from a simulated powercap tree; NVML on a real GPU only."""

import pytest

from sizebench.measurement import energy


def powercap(root, packages):
    for name, (count, wrap) in packages.items():
        domain = root / name
        domain.mkdir(parents=True)
        (domain / "energy_uj").write_text(f"{count}\n")
        (domain / "max_energy_range_uj").write_text(f"{wrap}\n")
    (root / "intel-rapl:0:0").mkdir()  # a subdomain (core): inside its package, not counted twice
    (root / "intel-rapl:0:0" / "energy_uj").write_text("5\n")
    return root


def test_rapl_counts_packages_and_handles_wraparound(tmp_path):
    root = powercap(
        tmp_path / "powercap", {"intel-rapl:0": (1_000_000, 10_000_000), "intel-rapl:1": (9_500_000, 10_000_000)}
    )
    assert [d.name for d in energy.rapl_domains(root)] == ["intel-rapl:0", "intel-rapl:1"]
    meter = energy.Meter("cpu", root)
    with meter.counting():
        (root / "intel-rapl:0" / "energy_uj").write_text("3500000\n")  # +2.5 J
        (root / "intel-rapl:1" / "energy_uj").write_text("500000\n")  # wrapped: +1.0 J
    assert meter.joules == pytest.approx(3.5) and meter.source.startswith("RAPL, 2 CPU package(s), whole package")


def test_energy_between_the_counted_blocks_is_left_out(tmp_path):
    root = powercap(tmp_path / "powercap", {"intel-rapl:0": (0, 10**12)})
    counter = root / "intel-rapl:0" / "energy_uj"
    meter = energy.Meter("cpu", root)
    for start, inside in ((0, 2_000_000), (50_000_000, 3_000_000)):  # 50 J spent between the blocks
        counter.write_text(f"{start}\n")
        with meter.counting():
            counter.write_text(f"{start + inside}\n")
    assert meter.joules == pytest.approx(5.0)


def test_no_counters_means_not_measured(tmp_path):
    meter = energy.Meter("cpu", tmp_path / "absent")
    with meter.counting():
        pass
    assert meter.joules is None and meter.source is None
    unreadable = powercap(tmp_path / "pc", {"intel-rapl:0": (1, 10)})
    (unreadable / "intel-rapl:0" / "energy_uj").write_text("not a number")
    assert energy.rapl_domains(unreadable) == []
    vanishing = energy.Meter("cpu", powercap(tmp_path / "gone", {"intel-rapl:0": (1, 10)}))
    with vanishing.counting():
        (tmp_path / "gone" / "intel-rapl:0" / "energy_uj").unlink()
    assert vanishing.joules is None


UUIDS = [
    "GPU-8932f937-d72c-4106-c12f-20bd9faed9f6",
    "GPU-1c2de4f1-0b5a-4c8e-9e57-3d2f7a1b9c04",
    "GPU-89aa0c11-5e2f-4d3a-8b6c-7f1e2d3c4b5a",
]


@pytest.mark.parametrize(
    "cuda_visible, shown",
    [
        (None, [0, 1, 2]),
        ("", []),
        ("2,0", [2, 0]),
        ("0, 2", [0, 2]),
        ("1,7,0", [1]),
        ("-1", []),
        ("0,0", [0]),
        (UUIDS[2], [2]),
        ("GPU-1c2d", [1]),
        (f"GPU-1c2d,{UUIDS[0]}", [1, 0]),
        ("GPU-89", []),
        ("GPU-00000000", []),
        ("MIG-8932f937-d72c-4106-c12f-20bd9faed9f6/1/0", []),
        ("1,GPU-ffff,2", [1]),
    ],
)
def test_cuda_visible_devices_names_the_nvml_gpus_read(cuda_visible, shown):
    assert energy.visible_gpus(cuda_visible, UUIDS) == shown


def test_the_prompt_stage_meters_its_timed_generations_only(tiny_model, suite_file, tmp_path, monkeypatch):
    """A counter the test writes, 1 J per forward pass of the model: the stage's joules are then the
    forward passes of its timed generations (one per new token), not the warm-up's or the TTFT runs'."""
    from sizebench.stages import generation
    from sizebench.engines.hf import loader
    from sizebench.planning.job import Job
    from sizebench.stages.stage import Context
    from sizebench.planning.registry import resolve
    from sizebench.runstore.store import RunStore

    root = powercap(tmp_path / "powercap", {"intel-rapl:0": (0, 10**15)})
    counter = root / "intel-rapl:0" / "energy_uj"
    monkeypatch.setenv("SIZEBENCH_POWERCAP", str(root))
    loaded = loader.load(resolve(str(tiny_model))[0], "cpu", "float32")

    def one_joule(module, args) -> None:
        counter.write_text(f"{int(counter.read_text()) + 1_000_000}\n")

    loaded.model.register_forward_pre_hook(one_joule)
    store = RunStore.create(tmp_path / "results", {"plan": {"models": []}})
    job = Job(
        str(store.dir),
        loaded.spec,
        "a",
        prompts_path=str(suite_file),
        gen=generation.GenSettings(max_new_tokens=6, repeat=2),
    )
    generation.STAGE.run(Context(loaded, job, store, "a", lambda stage, **fields: None, None))
    rows = store.records()
    used = next(r for r in rows if r["kind"] == "energy")
    assert used["new_tokens"] == sum(2 * r["new_tokens"] for r in rows if r["kind"] == "prompt") > 0
    assert used["joules"] == pytest.approx(used["new_tokens"]) and used["source"].startswith("RAPL, 1 CPU package")


@pytest.mark.gpu
def test_nvml_reads_gpu_energy():
    torch = pytest.importorskip("torch")
    pytest.importorskip("pynvml")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    meter = energy.Meter("cuda")
    with meter.counting():
        x = torch.randn(4096, 4096, device="cuda")
        for _ in range(50):
            x = x @ x / 64
        torch.cuda.synchronize()
    assert meter.joules is not None and meter.joules > 0 and meter.source.startswith("NVML")
