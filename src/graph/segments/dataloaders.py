from __future__ import annotations

import uuid
from typing import Any

from strawberry.dataloader import DataLoader

from domain.segments import service
from domain.tenancy.policies import Principal
from graph.core.batch import batch_loader


def segment_loader(p: Principal) -> DataLoader[uuid.UUID, Any]:
    return batch_loader(lambda ids: service.segments_by_ids(p, ids))
