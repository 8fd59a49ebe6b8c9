"""The ``tls`` options of every workload kind (and of the run's own reads of a service)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator

__all__ = ["Tls"]


class Tls(BaseModel):
    """TLS settings of a workload: ``ca`` (PEM file of trusted CAs), ``verify`` (false accepts
    any certificate, as ``curl -k``), ``server_name`` (SNI and the name checked), and a client
    certificate ``cert`` with its ``key`` (the key may be inside ``cert``). Files are read
    relative to the plan's folder and must exist when the plan is validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    verify: bool = True
    ca: str | None = None
    server_name: str | None = None
    cert: str | None = None
    key: str | None = None

    @model_validator(mode="after")
    def _key_needs_cert(self) -> Tls:
        if self.key is not None and self.cert is None:
            raise ValueError("tls.key is the key of a client certificate; give tls.cert too")
        return self
