"""The credentials the relay authenticates with: a managed identity in Azure, for the target API and
for the function's own storage account alike.

A developer sign-in is used only when `PAYMENTS_CREDENTIAL=developer` asks for it (and only for the
target); it never reads client secrets from the environment, so no secret can creep into a setting.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

from azure.core.credentials import TokenCredential

from .settings import Settings


def make_credential(kind: Literal["managed", "developer"], client_id: str | None = None) -> TokenCredential:
    """A new credential of the given kind; callers keep and reuse it (tokens are cached inside)."""
    if kind == "developer":
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential(
            exclude_environment_credential=True,  # would read a client secret from the environment
            exclude_managed_identity_credential=True,
            exclude_workload_identity_credential=True,
            exclude_interactive_browser_credential=True,
        )
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()


def target_credential(settings: Settings) -> TokenCredential | list[tuple[str, TokenCredential]]:
    """The credential for the target API, as the settings choose it (built once per pipeline): one, or
    one per identity named in PAYMENTS_TARGET_CLIENT_IDS (managed identities only), by client id."""
    identities = settings.target_identities
    if identities and settings.credential == "managed":
        return [(client_id, make_credential("managed", client_id)) for client_id in identities]
    return make_credential(settings.credential, settings.azure_client_id)


@cache
def _storage_credential(client_id: str | None) -> TokenCredential:
    return make_credential("managed", client_id)


def storage_credential(settings: Settings) -> TokenCredential:
    """The managed identity for the function's storage account: one per process and client id."""
    return _storage_credential(settings.storage_client_id or settings.azure_client_id)
