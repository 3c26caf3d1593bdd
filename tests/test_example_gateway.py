"""The example SMS gateway (examples/sms_gateway.py): Aliyun's request signature,
the webhook's HMAC, deduplication by delivery id, and the answers that steer
qms's retries. No Redis: the only stand-in is Alibaba Cloud, an httpx.MockTransport."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, quote_plus

import httpx
import pytest

from examples.sms_gateway import ENDPOINT, Settings, aliyun_signature, create_app

NOTIFY_SECRET = b"hall-notify-secret"
SETTINGS = Settings(
    notify_secret=NOTIFY_SECRET,
    access_key_id="testid",
    access_key_secret="testsecret",
    sign_name="大冶政务",
    templates={"ahead": "SMS_100001", "called": "SMS_100002"},
)
AHEAD: dict[str, Any] = {
    "id": "daye-1765000000000-0",
    "hall": "daye",
    "hall_name": "大冶市政务服务中心",
    "number": "A023",
    "service": "social-security",
    "service_name": "社保医保",
    "kind": "ahead",
    "ahead": 5,
    "window": None,
    "window_name": None,
    "to": "13800138000",
    "via": "phone",
    "at": "2026-12-07T09:41:00+08:00",
}
CALLED = AHEAD | {
    "id": "daye-1765000000900-0",
    "kind": "called",
    "ahead": 0,
    "window": "3",
    "window_name": "3号窗口",
}


def hmac_sha1_b64(key: str, text: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), text.encode(), hashlib.sha1).digest()).decode()


# --- the Aliyun RPC signature ------------------------------------------------


def test_signature_matches_aliyun_documented_example() -> None:
    # The worked example of Aliyun's former SMS API (SingleSendSms, 2016-09-27):
    # the same v1.0 RPC signature, POST, a Chinese SignName and a JSON parameter.
    # Its published result is reproduced by several independent client libraries.
    params = {
        "AccessKeyId": "testid",
        "Action": "SingleSendSms",
        "Format": "XML",
        "ParamString": '{"name":"d","name1":"d"}',
        "RecNum": "13098765432",
        "RegionId": "cn-hangzhou",
        "SignName": "标签测试",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "9e030f6b-03a2-40f0-a6ba-157d44532fd0",
        "SignatureVersion": "1.0",
        "TemplateCode": "SMS_1650053",
        "Timestamp": "2016-10-20T05:37:52Z",
        "Version": "2016-09-27",
    }
    assert aliyun_signature(params, "testsecret") == "ka8PDlV7S9sYqxEMRnmlBv/DoAE="


def test_signature_encodes_per_rfc3986_and_sorts_names() -> None:
    # StringToSign written out by hand from the documented rules: names sorted,
    # UTF-8 bytes as %XY, space as %20 (not +), * as %2A, ~ left bare; then the
    # whole canonical query encoded once more after "POST&%2F&".
    params = {"b": "x y*~", "a": "中", "Signature": "ignored: never signs itself"}
    string_to_sign = "POST&%2F&a%3D%25E4%25B8%25AD%26b%3Dx%2520y%252A~"
    assert aliyun_signature(params, "k") == hmac_sha1_b64("k&", string_to_sign)


def test_signature_agrees_with_the_documented_java_recipe() -> None:
    # Aliyun's docs: form-encode, then + -> %20, * -> %2A, %7E -> ~. Computed
    # here independently of the gateway's own encoder, over a SendSms request.
    def recipe(value: str) -> str:
        return (
            quote_plus(value, safe="").replace("+", "%20").replace("*", "%2A").replace("%7E", "~")
        )

    params = {
        "AccessKeyId": "LTAI-test",
        "Action": "SendSms",
        "PhoneNumbers": "13800138000",
        "SignName": "大冶政务",
        "TemplateParam": '{"hall":"大冶市政务服务中心","number":"A023","note":"a b*c~d/e"}',
        "Timestamp": "2026-12-07T01:41:00Z",
        "Version": "2017-05-25",
    }
    query = "&".join(f"{recipe(k)}={recipe(v)}" for k, v in sorted(params.items()))
    expected = hmac_sha1_b64("s3cret&", f"POST&{recipe('/')}&{recipe(query)}")
    assert aliyun_signature(params, "s3cret") == expected


# --- the webhook -------------------------------------------------------------


class Provider:
    """dysmsapi.aliyuncs.com as a MockTransport handler: records each SendSms form."""

    def __init__(self) -> None:
        self.forms: list[dict[str, str]] = []
        self.reply: httpx.Response | Exception = httpx.Response(
            200, json={"Code": "OK", "Message": "OK", "BizId": "1", "RequestId": "r"}
        )
        self.hold: asyncio.Event | None = None  # when given, SendSms waits for it
        self.reached = asyncio.Event()  # a SendSms has arrived

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        assert (request.method, str(request.url)) == ("POST", ENDPOINT)
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        self.forms.append(dict(parse_qsl(request.content.decode(), keep_blank_values=True)))
        self.reached.set()
        if self.hold is not None:
            await self.hold.wait()
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


@pytest.fixture
def provider() -> Provider:
    return Provider()


@pytest.fixture
async def client(provider: Provider) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway in-process: its lifespan run, state handed to each request
    the way uvicorn does, requests over httpx's ASGI transport."""
    app = create_app(SETTINGS, httpx.MockTransport(provider))
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Any, receive: Any, send: Any) -> None:
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
            yield c


def body_of(delivery: dict[str, Any]) -> bytes:
    # As qms sends it: compact, UTF-8, not ASCII-escaped.
    return json.dumps(delivery, separators=(",", ":"), ensure_ascii=False).encode()


async def deliver(
    client: httpx.AsyncClient, body: bytes, secret: bytes = NOTIFY_SECRET
) -> httpx.Response:
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-QMS-Signature": signature}
    return await client.post("/", content=body, headers=headers)


async def test_bad_or_missing_signature_is_401_and_sends_nothing(
    client: httpx.AsyncClient, provider: Provider
) -> None:
    body = body_of(AHEAD)
    assert (await deliver(client, body, secret=b"not-the-secret")).status_code == 401
    assert (await client.post("/", content=body)).status_code == 401
    tampered = body.replace(b"13800138000", b"13900139000")
    signature = "sha256=" + hmac.new(NOTIFY_SECRET, body, hashlib.sha256).hexdigest()
    headers = {"X-QMS-Signature": signature}
    assert (await client.post("/", content=tampered, headers=headers)).status_code == 401
    headers = {"X-QMS-Signature": signature.removeprefix("sha256=")}  # the scheme is part of it
    assert (await client.post("/", content=body, headers=headers)).status_code == 401
    assert provider.forms == []


async def test_delivery_is_texted_once_and_a_repeat_is_not_resent(
    client: httpx.AsyncClient, provider: Provider
) -> None:
    first = await deliver(client, body_of(AHEAD))
    assert first.status_code == 200
    [form] = provider.forms
    assert form | {"Signature": "", "SignatureNonce": "", "Timestamp": ""} == {
        "AccessKeyId": "testid",
        "Action": "SendSms",
        "Format": "JSON",
        "OutId": "daye-1765000000000-0",
        "PhoneNumbers": "13800138000",
        "SignName": "大冶政务",
        "Signature": "",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "",
        "SignatureVersion": "1.0",
        "TemplateCode": "SMS_100001",
        "TemplateParam": form["TemplateParam"],
        "Timestamp": "",
        "Version": "2017-05-25",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", form["Timestamp"])
    assert json.loads(form["TemplateParam"]) == {
        "hall": "大冶市政务服务中心",
        "number": "A023",
        "service": "社保医保",
        "ahead": "5",
    }
    # What Aliyun recomputes from the decoded form must match what was sent.
    assert form["Signature"] == aliyun_signature(form, "testsecret")

    again = await deliver(client, body_of(AHEAD))
    assert again.status_code == 200
    assert len(provider.forms) == 1


async def test_called_uses_its_own_template_and_the_window(
    client: httpx.AsyncClient, provider: Provider
) -> None:
    assert (await deliver(client, body_of(CALLED))).status_code == 200
    [form] = provider.forms
    assert form["TemplateCode"] == "SMS_100002"
    assert json.loads(form["TemplateParam"]) == {
        "number": "A023",
        "window": "3号窗口",
        "service": "社保医保",
    }


async def test_a_retry_during_the_send_waits_and_is_not_sent_twice(
    client: httpx.AsyncClient, provider: Provider
) -> None:
    provider.hold = asyncio.Event()
    first = asyncio.create_task(deliver(client, body_of(AHEAD)))
    await asyncio.wait_for(provider.reached.wait(), timeout=5)
    overtaking = await asyncio.wait_for(deliver(client, body_of(AHEAD)), timeout=5)
    assert overtaking.status_code == 503
    provider.hold.set()
    assert (await first).status_code == 200
    assert (await deliver(client, body_of(AHEAD))).status_code == 200
    assert len(provider.forms) == 1


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (httpx.Response(200, json={"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "x"}), 502),
        (httpx.Response(404, json={"Code": "InvalidAccessKeyId.NotFound", "Message": "x"}), 502),
        (httpx.Response(500, text="<html>oops</html>"), 502),
        (httpx.ReadTimeout("timed out"), 503),
        (httpx.ConnectError("refused"), 503),
    ],
)
async def test_provider_failure_is_5xx_and_the_retry_is_sent(
    client: httpx.AsyncClient, provider: Provider, reply: httpx.Response | Exception, status: int
) -> None:
    provider.reply = reply
    assert (await deliver(client, body_of(AHEAD))).status_code == status
    # A failure is not remembered as sent: qms's retry goes out once Aliyun recovers.
    provider.reply = httpx.Response(200, json={"Code": "OK"})
    assert (await deliver(client, body_of(AHEAD))).status_code == 200
    assert len(provider.forms) == 2


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b"[1,2]",
        b'{"hello":"world"}',
        body_of({k: v for k, v in AHEAD.items() if k != "number"}),
        body_of(AHEAD | {"id": 7}),
        body_of(AHEAD | {"kind": ["ahead"]}),
    ],
)
async def test_a_body_that_is_not_a_delivery_is_400(
    client: httpx.AsyncClient, provider: Provider, body: bytes
) -> None:
    assert (await deliver(client, body)).status_code == 400
    assert provider.forms == []


@pytest.mark.parametrize(
    "delivery",
    [
        AHEAD | {"via": "channel", "to": "wx-openid-123"},
        AHEAD | {"to": "12345"},
        AHEAD | {"kind": "snoozed"},
    ],
)
async def test_a_delivery_this_gateway_can_never_send_is_422(
    client: httpx.AsyncClient, provider: Provider, delivery: dict[str, Any]
) -> None:
    assert (await deliver(client, body_of(delivery))).status_code == 422
    assert provider.forms == []


def test_settings_come_from_the_environment() -> None:
    env = {
        "QMS_NOTIFY_SECRET": "s",
        "ALIYUN_ACCESS_KEY_ID": "id",
        "ALIYUN_ACCESS_KEY_SECRET": "key",
        "ALIYUN_SMS_SIGN_NAME": "大冶政务",
        "ALIYUN_SMS_TEMPLATE_AHEAD": "SMS_1",
        "ALIYUN_SMS_TEMPLATE_CALLED": "SMS_2",
    }
    settings = Settings.from_env(env)
    assert settings.notify_secret == b"s"
    assert settings.templates == {"ahead": "SMS_1", "called": "SMS_2"}
    with pytest.raises(KeyError):
        Settings.from_env({k: v for k, v in env.items() if k != "ALIYUN_SMS_SIGN_NAME"})
