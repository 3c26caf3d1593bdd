"""An example gateway a hall runs: qms's notification webhook in, Alibaba Cloud SMS out.

It imports nothing from qms: the webhook is the whole contract (examples/README.md).
What qms does with the answer: 2xx, delivered; 5xx, retried later with backoff; any
4xx but 408/429, never retried, so 4xx is kept for what no retry could fix."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ENDPOINT = "https://dysmsapi.aliyuncs.com/"
MAINLAND_MOBILE = re.compile(r"1[3-9]\d{9}")
SENT_IDS_KEPT = 10_000  # a day or more of a busy hall's notices, far past an hour of retries
log = logging.getLogger("sms_gateway")


def percent_encode(value: str) -> str:
    return quote(value, safe="")  # RFC 3986: only A-Za-z0-9-_.~ bare; space is %20, not '+'


def aliyun_signature(params: Mapping[str, str], secret: str, method: str = "POST") -> str:
    """Signature (v1.0, HMAC-SHA1) of an Alibaba Cloud RPC request's parameters."""
    pairs = sorted((k, v) for k, v in params.items() if k != "Signature")  # never signs itself
    canonical = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in pairs)
    string_to_sign = f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True)
class Settings:
    notify_secret: bytes
    access_key_id: str
    access_key_secret: str
    sign_name: str
    templates: Mapping[str, str]  # delivery kind -> 短信模板 TemplateCode

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        # A missing variable stops the gateway at start, not at the first visitor.
        return cls(
            notify_secret=env["QMS_NOTIFY_SECRET"].encode(),
            access_key_id=env["ALIYUN_ACCESS_KEY_ID"],
            access_key_secret=env["ALIYUN_ACCESS_KEY_SECRET"],
            sign_name=env["ALIYUN_SMS_SIGN_NAME"],
            templates={k: env[f"ALIYUN_SMS_TEMPLATE_{k.upper()}"] for k in ("ahead", "called")},
        )


@dataclass
class Gateway:
    """The handler's state, owned by the lifespan. `sent` is a bounded LRU of ids already
    texted, in memory because this is an example: a restart forgets it and replicas do
    not share it, so a retry could then text twice. A real gateway keeps the ids in its
    own store (a table, or Redis SET NX with a TTL longer than qms's hour of retries)."""

    settings: Settings
    client: httpx.AsyncClient
    sent: OrderedDict[str, None] = field(default_factory=OrderedDict)
    sending: set[str] = field(default_factory=set)  # ids whose SendSms is under way

    def already_sent(self, delivery_id: str) -> bool:
        if hit := delivery_id in self.sent:
            self.sent.move_to_end(delivery_id)
        return hit

    def remember(self, delivery_id: str) -> None:
        self.sent[delivery_id] = None
        if len(self.sent) > SENT_IDS_KEPT:
            self.sent.popitem(last=False)


def template_param(d: Mapping[str, Any]) -> dict[str, str]:
    """The values of the 短信模板's ${...} variables for this delivery (all strings)."""
    hall = str(d.get("hall_name") or d["hall"])
    service = str(d.get("service_name") or d["service"])
    common = {"number": str(d["number"]), "service": service}
    if d["kind"] == "ahead":
        return common | {"hall": hall, "ahead": str(d["ahead"])}
    window = d.get("window_name") or (f"{d['window']}号窗口" if d.get("window") else "窗口")
    return common | {"window": str(window)}


def send_sms_params(s: Settings, d: Mapping[str, Any], now: datetime, nonce: str) -> dict[str, str]:
    params = {
        "AccessKeyId": s.access_key_id,
        "Action": "SendSms",
        "Format": "JSON",
        "OutId": d["id"],  # comes back in Aliyun's delivery receipts: ties them to qms's id
        "PhoneNumbers": d["to"],
        "SignName": s.sign_name,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": nonce,
        "SignatureVersion": "1.0",
        "TemplateCode": s.templates[d["kind"]],
        "TemplateParam": json.dumps(template_param(d), ensure_ascii=False),
        "Timestamp": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Version": "2017-05-25",
    }
    return params | {"Signature": aliyun_signature(params, s.access_key_secret)}


def _answer(status: int, result: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"result": result}, status_code=status, headers=headers)


async def receive(request: Request) -> JSONResponse:
    gw: Gateway = request.state.gateway
    body = await request.body()  # the exact bytes qms signed, before any parsing
    expected = "sha256=" + hmac.new(gw.settings.notify_secret, body, hashlib.sha256).hexdigest()
    given = request.headers.get("x-qms-signature", "")
    if not hmac.compare_digest(expected.encode(), given.encode("latin-1")):
        return _answer(401, "bad signature")
    try:
        d = json.loads(body)
        if not all(isinstance(d.get(k), str) for k in ("id", "kind", "via", "to")):
            raise ValueError("not a delivery")
        template_param(d)  # every field its template needs is there
    except (ValueError, KeyError, TypeError, AttributeError):
        # 4xx is permanent for qms: a body that is not a delivery will not become one.
        return _answer(400, "not a delivery")
    sms = d["via"] == "phone" and MAINLAND_MOBILE.fullmatch(d["to"])
    if d["kind"] not in gw.settings.templates or not sms:
        # A delivery, but one this gateway can never send (a channel id, a new kind).
        return _answer(422, "this gateway texts ahead/called notices to mainland mobiles")
    if gw.already_sent(d["id"]):
        return _answer(200, "already sent")
    if d["id"] in gw.sending:
        # A retry overtook a send still under way: answer later, when it is known.
        return _answer(503, "in progress", {"Retry-After": "5"})
    params = send_sms_params(gw.settings, d, datetime.now(UTC), uuid.uuid4().hex)
    gw.sending.add(d["id"])
    try:
        reply = await gw.client.post(ENDPOINT, data=params)
    except httpx.HTTPError:
        # SendSms is not idempotent and a timeout may hide a sent SMS; retrying
        # risks a duplicate text, which beats a visitor missing their turn.
        log.warning("SendSms unreachable or timed out for %s", d["id"])
        return _answer(503, "provider unavailable")
    finally:
        gw.sending.discard(d["id"])
    try:
        code = reply.json()["Code"]
    except (ValueError, KeyError, TypeError):
        code = f"HTTP {reply.status_code}"
    if code != "OK":
        # Every refusal is retried (a real gateway could 422 isv.MOBILE_NUMBER_ILLEGAL).
        # Only the code is logged: Aliyun's Message can echo the phone number it signed.
        log.warning("SendSms refused %s: %s", d["id"], code)
        return _answer(502, f"provider refused: {code}")
    gw.remember(d["id"])
    return _answer(200, "sent")


def create_app(
    settings: Settings | None = None, transport: httpx.AsyncBaseTransport | None = None
) -> Starlette:
    """The gateway; `settings` default to the environment, read when it starts."""

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[dict[str, Gateway]]:
        # 1 s or more is what Aliyun advises for SendSms; under qms's 5 s webhook timeout.
        async with httpx.AsyncClient(transport=transport, timeout=3.0) as client:
            yield {"gateway": Gateway(settings or Settings.from_env(), client)}

    return Starlette(routes=[Route("/", receive, methods=["POST"])], lifespan=lifespan)


app = create_app()
