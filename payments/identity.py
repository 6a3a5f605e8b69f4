"""The one credential a process uses to reach the target: a managed identity in Azure.

A developer sign-in is used only when `PAYMENTS_CREDENTIAL=developer` asks for it; it never
reads client secrets from the environment, so no secret can creep into a setting.
"""

from __future__ import annotations

from azure.core.credentials import TokenCredential

from .settings import Settings


def make_credential(settings: Settings) -> TokenCredential:
    """Build the credential once per process; callers keep and reuse it."""
    if settings.credential == "developer":
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential(
            exclude_environment_credential=True,  # would read a client secret from the environment
            exclude_managed_identity_credential=True,
            exclude_workload_identity_credential=True,
            exclude_interactive_browser_credential=True,
        )
    from azure.identity import ManagedIdentityCredential

    if settings.azure_client_id:
        return ManagedIdentityCredential(client_id=settings.azure_client_id)
    return ManagedIdentityCredential()
