"""The plans of credits posted as several lines, fixed once in the relay's own storage, and the nightly
purge that forgets bank credits (the register's and the plans) past their retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContainerClient

from .. import codec
from ..bank.register import purge as purge_register
from ..storage import table_client


class Plans:
    """The plans of credits posted as several lines, one small blob each under `credits/<company>/
    <journal>/` in the relay's own container; the first to write one fixes it (a conditional create)."""

    def __init__(self, container: ContainerClient, company: str, journal: str):
        self.container = container
        self.prefix = f"credits/{company}/{journal}/"
        try:
            names = container.list_blobs(name_starts_with=self.prefix)
            self.known = {b.name[len(self.prefix) :].removesuffix(".json") for b in names}
        except ResourceNotFoundError:  # a fresh account: nothing fixed yet
            self.known = set()

    def fix(self, key: str, plan: dict[str, Any]) -> dict[str, Any]:
        """The credit's plan: the one fixed before, or else this one, now fixed."""
        if key not in self.known:
            try:
                self.container.upload_blob(self.prefix + key + ".json", codec.dumpb(plan), overwrite=False)
                self.known.add(key)
                return plan
            except ResourceExistsError:
                self.known.add(key)
        return self.get(key)

    def get(self, key: str) -> dict[str, Any]:
        return self.read(key)[0]

    def read(self, key: str) -> tuple[dict[str, Any], str]:
        """The plan and its blob's etag (to change it only if nobody did meanwhile)."""
        blob = self.container.download_blob(self.prefix + key + ".json", max_concurrency=1)
        return codec.loads(blob.readall(), unique_keys=False), blob.properties.etag

    def change(self, key: str, plan: dict[str, Any], etag: str) -> bool:
        """Replace a fixed plan (one line decided again by the operator), unless it changed since read."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError

        try:
            self.container.upload_blob(
                self.prefix + key + ".json",
                codec.dumpb(plan),
                overwrite=True,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceModifiedError:
            return False
        return True


def forget_old_credits(settings: Any, service: Any, now: datetime | None = None) -> tuple[int, int]:
    """The nightly purge of bank credits: the register's credits and the plans untouched for
    PAYMENTS_BANK_RETENTION_DAYS; how many of each were forgotten. A plan goes with its credit (and a
    plan fixed before the register existed goes by its own age)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=settings.bank_retention_days)
    table = table_client(settings, settings.bank_table)
    credits = purge_register(table, cutoff) if table is not None else 0
    plans = 0
    container = service.get_container_client(settings.batches_container)
    try:
        for blob in container.list_blobs(name_starts_with="credits/"):
            if blob.last_modified < cutoff:
                container.delete_blob(blob.name)
                plans += 1
    except ResourceNotFoundError:  # no container yet: nothing was ever planned
        pass
    return credits, plans
