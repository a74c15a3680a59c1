"""Stored runs as pandas DataFrames, one per record kind, with superseded rows removed.

A stage's rows are those of the attempt that finished it (or, unfinished, of its latest attempt:
sizebench.runstore.store.counted), so a resumed run shows each prompt once. With several runs, a model measured twice shows its latest run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sizebench.runstore import records as record_classes
from sizebench.runstore.store import RunStore, counted, started_order


@dataclass
class Frames:
    metas: list[dict]
    models: pd.DataFrame  # one row per model of the plans: name, params, location, order
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def __getitem__(self, kind: str) -> pd.DataFrame:
        return self.tables[kind]


def load(run_dirs: list[Path], latest_only: bool = True) -> Frames:
    rows, counts, metas, models = [], [], [], []  # counts: whether each row counts (store.counted)
    kind_columns: dict[str, set] = {}
    ordered = sorted((Path(p) for p in run_dirs), key=started_order)
    for run_dir in ordered:
        store = RunStore(run_dir)
        meta = store.meta()
        metas.append(meta)
        for spec in meta["plan"]["models"]:
            models.append(
                {
                    "model": spec["name"],
                    "params_published": spec["params"],
                    "location": spec["location"],
                    "source": spec["source"],
                    "run_id": store.run_id,
                    "params_non_embedding_published": spec.get("params_non_embedding"),
                }
            )
        run_records = store.records()
        kept = {id(record) for record in counted(run_records)}
        for seq, record in enumerate(run_records):
            rows.append({**record, "run_id": store.run_id, "seq": seq})
            counts.append(id(record) in kept)
            kind_columns.setdefault(record["kind"], set()).update(record)
    records = pd.DataFrame(rows)
    model_table = pd.DataFrame(
        models, columns=["model", "params_published", "location", "source", "run_id", "params_non_embedding_published"]
    )
    if records.empty:
        return Frames(
            metas,
            model_table.drop_duplicates("model", keep="last"),
            {kind: pd.DataFrame() for kind in record_classes.KINDS},
        )
    records = records[counts]
    if latest_only:
        started = records["run_id"].map({run_dir.name: n for n, run_dir in enumerate(ordered)})
        # a run's bandwidth stays with every rung of that run shown, whichever rung measured it
        records = records[
            (started == started.groupby(records["model"]).transform("max")) | (records["kind"] == "bandwidth")
        ]
        model_table = model_table.drop_duplicates("model", keep="last")
    tables = {}
    for kind in record_classes.KINDS:
        columns = [c for c in records.columns if c in kind_columns.get(kind, ())] + ["run_id", "seq"]
        tables[kind] = records.loc[records["kind"] == kind, columns].reset_index(drop=True)
    return Frames(metas, model_table.reset_index(drop=True), tables)
