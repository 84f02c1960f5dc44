"""The OPC-UA part of a device profile: the server's node of each point, subscribe or poll,
and the security of the session: policy and mode, the agent's certificate, how the server's
certificate is trusted, and the user it logs in as.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from smartcity.agents.profile_base import DeviceBase, Duration, PointBase, ProfileModel

DEFAULT_TRUST_FOLDER = Path("trusted-servers")
"""Where the certificates of trusted OPC-UA servers are kept, beside the profile, unless the
profile's ``security.trusted_servers`` names another folder."""


class OpcuaSecurity(ProfileModel):
    """``policy: None`` must be written out: an unencrypted session is never a default.

    With a secure policy the server is authenticated too: its certificate must be the pinned
    ``server_cert``, or be (or be issued by) a certificate in the ``trusted_servers`` folder.
    ``trust_on_first_use`` stores the certificate a server presents the first time into that
    folder and refuses a different one later; it is off unless written out.
    """

    policy: Literal["None", "Basic256Sha256"]
    mode: Literal["None", "Sign", "SignAndEncrypt"]
    cert: Path | None = None
    key: Path | None = None
    server_cert: Path | None = None
    trusted_servers: Path | None = Field(
        default=None, description="folder of trusted server or CA certificates"
    )
    trust_on_first_use: bool = False
    username: str | None = None
    password: str | None = None

    @property
    def trust_folder(self) -> Path:
        return self.trusted_servers or DEFAULT_TRUST_FOLDER

    @field_validator("policy", "mode", mode="before")
    @classmethod
    def _none_is_a_word(cls, value: Any) -> Any:
        # YAML reads a bare ``None`` as a string, but ``null``/``~`` as no value at all.
        return "None" if value is None else value

    @model_validator(mode="after")
    def _consistent(self) -> OpcuaSecurity:
        if self.policy == "None" and self.mode != "None":
            raise ValueError(f"mode {self.mode} needs policy Basic256Sha256, not None")
        if self.policy != "None":
            if self.mode == "None":
                raise ValueError("policy Basic256Sha256 needs mode Sign or SignAndEncrypt")
            if self.cert is None or self.key is None:
                raise ValueError("policy Basic256Sha256 needs the agent's cert and key files")
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        if self.policy == "None" and (self.trust_on_first_use or self.trusted_servers):
            raise ValueError(
                "policy None has no server certificate to trust: drop trusted_servers and "
                "trust_on_first_use, or use Basic256Sha256"
            )
        if self.trust_on_first_use and self.server_cert is not None:
            raise ValueError(
                "server_cert pins one certificate; trust_on_first_use would accept another: "
                "give one of them"
            )
        return self


class OpcuaPoint(PointBase):
    node: str
    sampling_interval: Duration | None = Field(
        default=None, description="server-side sampling for subscribe mode; poll interval if unset"
    )

    @field_validator("node")
    @classmethod
    def _node(cls, value: str) -> str:
        from asyncua import ua

        if not re.match(r"^(ns=\d+;)?[isgb]=.+$", value):
            raise ValueError(f"node {value!r} is not a node id like ns=2;s=Station1.pH or ns=2;i=7")
        try:
            ua.NodeId.from_string(value)
        except Exception as exc:
            raise ValueError(f"node {value!r} is not a valid node id: {exc}") from None
        return value


class OpcuaDevice(DeviceBase):
    protocol: Literal["opcua"]
    mode: Literal["subscribe", "poll"] = "subscribe"
    security: OpcuaSecurity
    max_nodes_per_read: int = Field(default=500, ge=1)
    points: list[OpcuaPoint] = Field(min_length=1)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "opc.tcp" or not parts.hostname:
            raise ValueError(
                f"{value!r}: an OPC-UA endpoint is opc.tcp://host:port/path "
                "(opc.tcp://10.20.0.7:4840/station)"
            )
        return value
