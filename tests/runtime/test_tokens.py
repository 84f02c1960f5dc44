"""Token verification: what is accepted, what is refused and with which words.

Tokens are signed here with real Ed25519 keys (cryptography) through PyJWT, the way the
identity service will sign them; forgeries are built byte by byte the way an attacker would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import OKPAlgorithm
from token_support import ISSUER, Signer

from smartcity.runtime.errors import Unauthenticated
from smartcity.runtime.tokens import (
    AuthSettings,
    Claims,
    KeySet,
    KeySetError,
    PrincipalKind,
    RevocationList,
    Role,
    RoleBinding,
    TokenError,
    TokenVerifier,
    thumbprint,
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def handmade(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    head = b64(json.dumps(header).encode())
    body = b64(json.dumps(payload).encode())
    return f"{head}.{body}.{b64(signature)}"


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def verifier(signer: Signer) -> TokenVerifier:
    return TokenVerifier(KeySet.from_jwks({"keys": [signer.jwk()]}), issuer=ISSUER)


def refused(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(TokenError) as caught:
        verifier.verify(token)
    message = str(caught.value)
    assert len(token) < 16 or token not in message, "a token must never appear in an error message"
    return message


# -- accepted --------------------------------------------------------------------------------


def test_valid_token_gives_its_claims(signer, verifier):
    token = signer.sign(jti="t-42", exp=2_000_000_000)
    claims = verifier.verify(token)
    assert claims.sub == "p-operator-1"
    assert claims.kind is PrincipalKind.STAFF
    assert claims.roles == {
        RoleBinding("operator", "electricity"),
        RoleBinding("viewer", "water_supply"),
    }
    assert claims.jti == "t-42"
    assert claims.exp == datetime(2033, 5, 18, 3, 33, 20, tzinfo=UTC)
    assert claims.iss == ISSUER
    assert claims.aud == ("smartcity",)
    assert claims.acr == "vneid:2"
    assert claims.amr == ("pwd", "otp")


def test_token_without_roles_acr_or_amr(signer, verifier):
    claims = verifier.verify(signer.sign(roles=None, acr=None, amr=None, kind="citizen"))
    assert claims.roles == frozenset()
    assert (claims.acr, claims.amr, claims.kind) == (None, (), PrincipalKind.CITIZEN)
    assert not claims.allows("viewer", "health")


def test_audience_may_be_a_string_and_any_accepted_one_suffices(signer):
    verifier = TokenVerifier(
        KeySet.from_jwks({"keys": [signer.jwk()]}), audiences=["smartcity-agent", "smartcity"]
    )
    assert verifier.verify(signer.sign(aud="smartcity-agent")).aud == ("smartcity-agent",)
    assert verifier.verify(signer.sign(aud=["records", "smartcity"])).sub == "p-operator-1"


def test_clock_skew_within_leeway_is_tolerated(signer):
    keys = KeySet.from_jwks({"keys": [signer.jwk()]})
    now = int(time.time())
    just_expired = signer.sign(iat=now - 900, exp=now - 10)
    assert TokenVerifier(keys, leeway=30).verify(just_expired).sub == "p-operator-1"
    assert refused(TokenVerifier(keys, leeway=0), just_expired) == "token expired"


# -- refused ---------------------------------------------------------------------------------


def test_expired_token(signer, verifier):
    now = int(time.time())
    assert refused(verifier, signer.sign(iat=now - 3600, exp=now - 60)) == "token expired"


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_token_not_yet_valid(signer, verifier, claim):
    future = int(time.time()) + 600
    token = signer.sign(**{claim: future, "exp": future + 900})
    assert refused(verifier, token).startswith("token not yet valid")


def test_wrong_audience(signer, verifier):
    assert refused(verifier, signer.sign(aud=["records"])) == (
        "wrong audience: this service accepts smartcity"
    )


def test_wrong_issuer(signer, verifier):
    assert refused(verifier, signer.sign(iss="someone-else")) == (
        "wrong issuer: only smartcity-identity is trusted"
    )


def test_signature_by_another_key_with_the_same_kid(signer, verifier):
    impostor = Signer(kid=signer.kid)
    assert refused(verifier, impostor.sign()) == "signature invalid"


def test_payload_changed_after_signing(signer, verifier):
    head, _, signature = signer.sign(roles=["viewer:electricity"]).split(".")
    raised = b64(json.dumps(signer.claims(roles=["engineer:*"])).encode())
    assert refused(verifier, f"{head}.{raised}.{signature}") == "signature invalid"


def test_alg_none_is_refused(signer, verifier):
    token = handmade({"alg": "none", "typ": "JWT", "kid": signer.kid}, signer.claims())
    assert refused(verifier, token) == "algorithm 'none' not accepted: only EdDSA"
    no_alg = handmade({"typ": "JWT", "kid": signer.kid}, signer.claims())
    assert refused(verifier, no_alg) == "algorithm None not accepted: only EdDSA"


def test_hs256_with_the_public_key_as_secret_is_refused(signer):
    """The classic confusion: the attacker knows the public key and HMACs a token with it,
    hoping the verifier feeds the same bytes to HS256 because the header asks for it."""
    pem = signer.public_pem()
    verifier = TokenVerifier(KeySet.from_pem(pem, kid=signer.kid))
    for secret in (pem, signer.jwk()["x"].encode()):
        header = {"alg": "HS256", "typ": "JWT", "kid": signer.kid}
        claims = signer.claims(roles=["engineer:*"])
        unsigned = handmade(header, claims).rsplit(".", 1)[0]
        mac = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
        token = f"{unsigned}.{b64(mac)}"
        assert refused(verifier, token) == "algorithm 'HS256' not accepted: only EdDSA"


def test_unknown_kid(signer, verifier):
    other = Signer(kid="key-9")
    assert refused(verifier, other.sign()) == "unknown key id 'key-9'"
    huge = Signer(kid="k" * 5000)
    message = refused(verifier, huge.sign())
    assert message.startswith("unknown key id 'kkk")
    assert len(message) < 100


def test_token_without_kid_needs_a_single_trusted_key(signer):
    keyless = Signer(kid=None, key=signer.key)
    single = TokenVerifier(KeySet.from_pem(signer.public_pem()))
    assert single.verify(keyless.sign()).sub == "p-operator-1"

    two = TokenVerifier(KeySet.merge(KeySet.from_jwks({"keys": [signer.jwk()]}), single.keys))
    assert refused(two, keyless.sign()) == "token names no key id (kid) and 2 keys are trusted"


def test_revoked_jti_is_refused_and_forgeries_never_reach_the_hook(signer):
    asked: list[str] = []
    revoked = RevocationList()
    revoked.revoke("leaked", until=time.time() + 3600)

    def is_revoked(claims: Claims) -> bool:
        asked.append(claims.jti)
        return revoked(claims)

    verifier = TokenVerifier(KeySet.from_jwks({"keys": [signer.jwk()]}), is_revoked=is_revoked)
    assert refused(verifier, signer.sign(jti="leaked")) == "token revoked (jti 'leaked')"
    assert verifier.verify(signer.sign(jti="fine")).jti == "fine"
    refused(verifier, Signer(kid=signer.kid).sign(jti="forged"))
    assert asked == ["leaked", "fine"]


def held(jti: str, sub: str = "p-1", iat: float = 900.0) -> Claims:
    """Claims as a verified token would carry them, for the revocation list alone."""
    return Claims(
        sub=sub,
        kind=PrincipalKind.STAFF,
        roles=frozenset(),
        iss=ISSUER,
        aud=("smartcity",),
        iat=datetime.fromtimestamp(iat, UTC),
        exp=datetime.fromtimestamp(iat + 900, UTC),
        jti=jti,
    )


def test_revocation_list_forgets_after_the_token_expiry():
    now = [1000.0]
    revoked = RevocationList(clock=lambda: now[0])
    revoked.revoke("a", until=1100.0)
    revoked.revoke("b", until=2000.0)
    assert [revoked(held("a")), revoked(held("b")), revoked(held("c"))] == [True, True, False]
    assert len(revoked) == 2
    now[0] = 1100.0
    assert not revoked(held("a"))
    assert len(revoked) == 1


def test_a_disabled_principal_loses_every_token_issued_before_and_none_after():
    now = [1000.0]
    revoked = RevocationList(clock=lambda: now[0])
    revoked.revoke_subject("p-7", issued_before=1000.0, until=1900.0)
    assert revoked(held("x", sub="p-7", iat=999.0))
    assert not revoked(held("y", sub="p-7", iat=1000.0)), "a token issued after enabling again"
    assert not revoked(held("z", sub="p-8", iat=500.0)), "another principal"
    # A later, narrower announcement never shortens an earlier one.
    revoked.revoke_subject("p-7", issued_before=990.0, until=1500.0)
    assert revoked(held("x", sub="p-7", iat=995.0))
    now[0] = 1900.0
    assert not revoked(held("x", sub="p-7", iat=999.0))
    assert len(revoked) == 0


@pytest.mark.parametrize("claim", ["iss", "sub", "aud", "iat", "exp", "jti"])
def test_required_claims(signer, verifier, claim):
    assert refused(verifier, signer.sign(**{claim: None})) == f"token lacks the {claim!r} claim"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kind": "robot"}, "token 'kind' 'robot' is not one of citizen, staff, device, service"),
        ({"kind": None}, "token 'kind' None is not one of citizen, staff, device, service"),
        (
            {"roles": ["operator"]},
            "malformed 'roles' claim: 'operator' is not a role binding of the form <role>:<field>",
        ),
        ({"roles": [1]}, "malformed 'roles' claim: a list of strings is expected"),
        ({"sub": ""}, "malformed 'sub' claim: a principal id is expected"),
        ({"acr": 2}, "malformed 'acr' claim: a string is expected"),
    ],
)
def test_malformed_claims(signer, verifier, overrides, message):
    assert refused(verifier, signer.sign(**overrides)) == message


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "no token"),
        ("   ", "no token"),
        ("not-a-jwt", "malformed token: Not enough segments"),
        ("a.b.c", "malformed token: Invalid header padding"),
        ("x" * 20_000, "token too large (over 16384 bytes)"),
    ],
)
def test_garbage(verifier, token, message):
    assert refused(verifier, token) == message


def test_token_error_is_unauthenticated(verifier):
    with pytest.raises(Unauthenticated):
        verifier.verify("")


# -- roles -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("held", "asked", "field", "allowed"),
    [
        ("operator:electricity", "operator", "electricity", True),
        ("operator:electricity", "viewer", "electricity", True),
        ("operator:electricity", "engineer", "electricity", False),
        ("operator:electricity", "operator", "water_supply", False),
        ("operator:electricity", "operator", "*", False),
        ("engineer:lighting", "operator", "lighting", True),
        ("engineer:lighting", "viewer", "lighting", True),
        ("viewer:lighting", "operator", "lighting", False),
        ("operator:*", "operator", "traffic", True),
        ("operator:*", "operator", "*", True),
        ("operator:*", "engineer", "traffic", False),
        ("records_officer:health", "viewer", "health", False),
        ("records_officer:health", "records_officer", "health", True),
        ("engineer:health", "records_officer", "health", False),
        ("identity_admin:*", "operator", "electricity", False),
        ("identity_admin:*", "identity_admin", "*", True),
        ("auditor:*", "auditor", "energy", True),
        ("auditor:*", "viewer", "energy", False),
    ],
)
def test_role_hierarchy(signer, verifier, held, asked, field, allowed):
    claims = verifier.verify(signer.sign(roles=[held]))
    assert claims.allows(asked, field) is allowed


def test_role_names_are_those_of_identity_proto():
    proto = Path(__file__).parents[2] / "proto/smartcity/identity/v1/identity.proto"
    text = proto.read_text(encoding="utf-8")
    for role in Role:
        assert f"`{role.value}`" in text


@pytest.mark.parametrize("text", ["operator", ":electricity", "operator:", "a:b:c", " viewer:x"])
def test_bad_role_binding(text):
    with pytest.raises(ValueError, match="is not a role binding"):
        RoleBinding.parse(text)


# -- key sets --------------------------------------------------------------------------------


def test_jwks_skips_keys_of_other_types(signer, tmp_path):
    rsa_like = {"kty": "RSA", "kid": "old", "n": "AQAB", "e": "AQAB"}
    document = {"keys": [rsa_like, signer.jwk()]}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    keys = KeySet.from_jwks_file(path)
    assert list(keys) == ["key-1"]
    assert TokenVerifier(keys).verify(signer.sign()).sub == "p-operator-1"


def _jwk(**changes: Any) -> dict[str, Any]:
    jwk = Signer(kid="k1").jwk()
    jwk.update(changes)
    return {key: value for key, value in jwk.items() if value is not None}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "JWKS: not JSON: "),
        ("[]", "JWKS: a JWKS is a JSON object with a 'keys' list"),
        ({}, "JWKS: a JWKS needs a non-empty 'keys' list"),
        ({"keys": []}, "JWKS: a JWKS needs a non-empty 'keys' list"),
        ({"keys": ["k"]}, "JWKS: keys[0]: a key is a JSON object"),
        ({"keys": [_jwk(kid=None)]}, "JWKS: keys[0]: the key has no 'kid'"),
        ({"keys": [_jwk(d="c2VjcmV0")]}, "JWKS: key 'k1' holds a private key ('d')"),
        ({"keys": [_jwk(x="AAAA")]}, "JWKS: key 'k1': not a valid Ed25519 public key"),
        ({"keys": [_jwk(x=None)]}, "JWKS: key 'k1': not a valid Ed25519 public key"),
        ({"keys": [_jwk(alg="RS256")]}, "JWKS: key 'k1': alg 'RS256' is not EdDSA"),
        ({"keys": [_jwk(use="enc")]}, "JWKS: key 'k1': use 'enc' is not 'sig'"),
        ({"keys": [_jwk(), _jwk()]}, "JWKS: key 'k1' is listed twice"),
        (
            {"keys": [{"kty": "EC", "crv": "P-256", "kid": "e"}]},
            "JWKS: no Ed25519 (OKP) signing key in the set (found EC/P-256)",
        ),
    ],
)
def test_bad_jwks_documents(document, message):
    with pytest.raises(KeySetError) as caught:
        KeySet.from_jwks(document)
    assert str(caught.value).startswith(message)


def test_missing_jwks_file(tmp_path):
    with pytest.raises(KeySetError, match=r"jwks\.json: cannot read the key set"):
        KeySet.from_jwks_file(tmp_path / "jwks.json")


def test_pem_keys(signer, tmp_path):
    with pytest.raises(KeySetError, match="PEM: not a PEM public key"):
        KeySet.from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(KeySetError, match="PEM: not an Ed25519 public key"):
        KeySet.from_pem(ec_pem)
    # A private key file given where the public key belongs is refused, not derived from.
    private_pem = signer.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(KeySetError, match="not a PEM public key"):
        KeySet.from_pem(private_pem)
    keys = KeySet.from_pem(signer.public_pem())
    assert list(keys) == [thumbprint(signer.key.public_key())]


def test_thumbprint_matches_rfc_8037():
    """RFC 8037 appendix A.2/A.3: the Ed25519 example key and its RFC 7638 thumbprint."""
    key = OKPAlgorithm.from_jwk(
        {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    )
    assert thumbprint(key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_settings_build_a_verifier_from_files(tmp_path):
    identity, bootstrap = Signer(kid="id-2026"), Signer(kid="bootstrap")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [identity.jwk()]}), "utf-8")
    (tmp_path / "bootstrap.pem").write_bytes(bootstrap.public_pem())
    settings = AuthSettings.model_validate(
        {
            "jwks_file": tmp_path / "jwks.json",
            "public_keys": [{"file": tmp_path / "bootstrap.pem", "kid": "bootstrap"}],
            "audiences": ["smartcity-agent", "smartcity"],
            "leeway_seconds": 5,
        }
    )
    verifier = TokenVerifier.from_settings(settings)
    assert sorted(verifier.keys) == ["bootstrap", "id-2026"]
    assert verifier.verify(identity.sign(aud="smartcity-agent")).sub == "p-operator-1"
    assert verifier.verify(bootstrap.sign()).sub == "p-operator-1"
    assert verifier.leeway == 5

    bare = AuthSettings.model_validate({"public_keys": [str(tmp_path / "bootstrap.pem")]})
    assert bare.public_keys[0].kid is None
    assert list(bare.key_set()) == [thumbprint(bootstrap.key.public_key())]


def test_settings_without_keys_or_with_a_key_twice(tmp_path):
    with pytest.raises(KeySetError, match=r"set auth\.jwks_file or auth\.public_keys"):
        TokenVerifier.from_settings(AuthSettings())
    signer = Signer(kid="same")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [signer.jwk()]}), "utf-8")
    (tmp_path / "same.pem").write_bytes(signer.public_pem())
    settings = AuthSettings(
        jwks_file=tmp_path / "jwks.json",
        public_keys=[{"file": tmp_path / "same.pem", "kid": "same"}],
    )
    with pytest.raises(KeySetError, match="key id 'same' is configured twice"):
        settings.key_set()


def test_settings_refuse_unknown_keys_and_bad_values():
    with pytest.raises(ValueError, match="audience"):
        AuthSettings(audience="x")
    with pytest.raises(ValueError, match="leeway_seconds"):
        AuthSettings(leeway_seconds=-1)
    with pytest.raises(ValueError, match="an audience must not be empty"):
        AuthSettings(audiences=[" "])


def test_key_rotation_takes_effect_for_the_next_token(signer, verifier):
    successor = Signer(kid="key-2")
    assert refused(verifier, successor.sign()) == "unknown key id 'key-2'"
    verifier.replace_keys(KeySet.from_jwks({"keys": [signer.jwk(), successor.jwk()]}))
    assert verifier.verify(successor.sign()).sub == "p-operator-1"
    assert verifier.verify(signer.sign()).sub == "p-operator-1"


def test_a_remembered_token_is_still_refused_once_revoked_expired_or_its_key_withdrawn(
    signer, monkeypatch
):
    revoked = RevocationList()
    verifier = TokenVerifier(signer.key_set(), is_revoked=revoked, leeway=0)
    token = signer.sign(jti="remembered")
    assert verifier.verify(token).jti == "remembered"
    assert verifier.verify(token).jti == "remembered"  # from memory this time
    revoked.revoke("remembered", until=time.time() + 900)
    assert refused(verifier, token) == "token revoked (jti 'remembered')"

    other = signer.sign(jti="other")
    verifier.verify(other)
    verifier.replace_keys(Signer(kid="key-2").key_set())
    assert refused(verifier, other) == "unknown key id 'key-1'"

    verifier.replace_keys(signer.key_set())
    late = signer.sign(jti="late")
    expiry = verifier.verify(late).exp.timestamp()
    monkeypatch.setattr("smartcity.runtime.tokens.time.time", lambda: expiry + 1)
    assert refused(verifier, late) == "token expired"
