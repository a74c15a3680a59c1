"""Stored runs as pandas DataFrames, one per record kind, with superseded rows removed.

A stage's rows are those of the attempt that finished it (or, unfinished, of its latest attempt), so
a resumed run shows each prompt once. With several runs, a model measured twice shows its latest run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sizebench.runstore import records as record_classes
from sizebench.runstore.store import RunStore, started_order



def kind_stage() -> dict[str, str]:
    """Record kind -> the stage whose finishing attempt supersedes its rows, from the record classes.
    item_text is written once per run (by the first model) and kept whatever happens to that stage."""
    return {kind: cls.written_in for kind, cls in record_classes.KINDS.items() if cls.written_in}


@dataclass
class Frames:
    metas: list[dict]
    models: pd.DataFrame  # one row per model of the plans: name, params, location, order
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def __getitem__(self, kind: str) -> pd.DataFrame:
        return self.tables[kind]


def load(run_dirs: list[Path], latest_only: bool = True) -> Frames:
    rows, metas, models = [], [], []
    kind_columns: dict[str, set] = {}
    ordered = sorted((Path(p) for p in run_dirs), key=started_order)
    for run_dir in ordered:
        store = RunStore(run_dir)
        meta = store.meta()
        metas.append(meta)
        for spec in meta["plan"]["models"]:
            models.append({"model": spec["name"], "params_published": spec["params"], "location": spec["location"],
                           "source": spec["source"], "run_id": store.run_id,
                           "params_non_embedding_published": spec.get("params_non_embedding")})
        for seq, record in enumerate(store.records()):
            rows.append({**record, "run_id": store.run_id, "seq": seq})
            kind_columns.setdefault(record["kind"], set()).update(record)
    records = pd.DataFrame(rows)
    model_table = pd.DataFrame(models, columns=["model", "params_published", "location", "source", "run_id",
                                               "params_non_embedding_published"])
    if records.empty:
        return Frames(metas, model_table.drop_duplicates("model", keep="last"),
                      {kind: pd.DataFrame() for kind in record_classes.KINDS})
    records = _current_attempts(records)
    if latest_only:
        started = records["run_id"].map({run_dir.name: n for n, run_dir in enumerate(ordered)})
        # a run's bandwidth stays with every rung of that run shown, whichever rung measured it
        records = records[(started == started.groupby(records["model"]).transform("max"))
                          | (records["kind"] == "bandwidth")]
        model_table = model_table.drop_duplicates("model", keep="last")
    tables = {}
    for kind in record_classes.KINDS:
        columns = [c for c in records.columns if c in kind_columns.get(kind, ())] + ["run_id", "seq"]
        tables[kind] = records.loc[records["kind"] == kind, columns].reset_index(drop=True)
    return Frames(metas, model_table.reset_index(drop=True), tables)


def _current_attempts(records: pd.DataFrame) -> pd.DataFrame:
    """Keep, per (run, model, stage), the finishing attempt; the latest load; failures not since redone."""
    if "stage" not in records:  # no stage finished and nothing failed yet (an early Ctrl-C)
        records = records.assign(stage=None)
    group = records["kind"].map(kind_stage()).fillna(records["kind"])  # prompts/tasks for stage rows, else kind
    finished = (records[records["kind"] == "stage"].groupby(["run_id", "model", "stage"])["attempt"].last()
                .rename_axis(["run_id", "model", "group"]).rename("finished").reset_index())
    frame = records.assign(group=group).merge(finished, on=["run_id", "model", "group"], how="left")
    last_in_group = frame.groupby(["run_id", "model", "group"])["attempt"].transform("last")
    latest = frame.groupby(["run_id", "model"])["attempt"].transform("last")
    wanted = frame["finished"].fillna(last_in_group)
    keep = (frame["kind"] == "stage") | ((frame["kind"] == "failed") & (frame["attempt"] == latest)) | (
        ~frame["kind"].isin(["stage", "failed"]) & (frame["attempt"] == wanted))
    return records[keep.to_numpy()]
