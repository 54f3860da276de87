"""State changes of the catalog: models, versions, datasets, training runs, evaluations and lineage edges.

One module per aggregate (`catalog_models`, `datasets`, `training`, `lineage`, `evaluations`) on three shared ones:
`rules` (each field's value through its rule), `graph` (the owner's lineage graph) and `common` (role, state, audit).
Each function checks the actor's role (admin of the owner tenant), validates everything before writing, runs in
one transaction and writes an audit entry. Lineage writes lock the owner's graph row first, so concurrent inserts
are serialised and a cycle can never be formed by two edges added at the same time.
"""

from apps.catalog.services.catalog_models import (
    MODEL_FIELDS,
    VERSION_FIELDS,
    change_model_status,
    create_model,
    create_version,
    update_model,
    update_version,
)
from apps.catalog.services.datasets import DATASET_FIELDS, create_dataset, update_dataset
from apps.catalog.services.evaluations import (
    delete_evaluation,
    recompute_quality,
    recover_evaluations,
    run_evaluation,
    submit_evaluation,
    update_evaluation,
)
from apps.catalog.services.lineage import add_lineage_edge
from apps.catalog.services.training import create_training_run

__all__ = [
    "DATASET_FIELDS",
    "MODEL_FIELDS",
    "VERSION_FIELDS",
    "add_lineage_edge",
    "change_model_status",
    "create_dataset",
    "create_model",
    "create_training_run",
    "create_version",
    "delete_evaluation",
    "recompute_quality",
    "recover_evaluations",
    "run_evaluation",
    "submit_evaluation",
    "update_dataset",
    "update_evaluation",
    "update_model",
    "update_version",
]
