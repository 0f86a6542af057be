#!/usr/bin/env python3
"""Interop check of imrelay's callback endpoints against the platforms' official
Python SDKs (run by crates/imrelay/tests/callbacks_python.rs; needs the venv that
tests/run creates: wechatpy, lark-oapi, standardwebhooks, cryptography).

1. Build encrypted, signed callbacks with the SDKs (wechatpy for WeCom, WeChat
   and DingTalk's identical cipher; lark-oapi checks every Feishu request we
   build before it is sent: it must accept it as a genuine Feishu callback).
2. POST them to a running imrelay.
3. Check imrelay's answers with the SDKs: the WeCom echostr, the Feishu
   challenge, and DingTalk's encrypted "success" (decrypted with wechatpy).
4. Fetch what imrelay forwarded to the test's receiver, verify every Standard
   Webhooks signature with the `standardwebhooks` reference package, and check
   each carries the decrypted event.

Usage: callbacks_e2e.py SETTINGS_JSON   (gateway URL, receiver dump URL, secrets)
Exit 0 when every check passed; otherwise a traceback naming the failed check.
"""

import base64
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

import lark_oapi as lark
from lark_oapi.core.model import RawRequest
from lark_oapi.core.utils import AESCipher
import standardwebhooks
import wechatpy.crypto
import wechatpy.utils

try:  # wechatpy 2.x names WeCom "work"; the 1.8 line on PyPI calls it "enterprise".
    from wechatpy.work.crypto import WeChatCrypto as WeComCrypto
except ImportError:
    from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto

S = json.loads(sys.argv[1])
GW = S["gateway"].rstrip("/")
CHECKS = []


def check(name, cond, detail=""):
    if not cond:
        raise AssertionError(f"check failed: {name}: {detail}")
    CHECKS.append(name)
    print(f"ok  {name}", flush=True)


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8")


def xml_field(xml, name):
    start = xml.index(f"<{name}>") + len(name) + 2
    end = xml.index(f"</{name}>")
    v = xml[start:end]
    if v.startswith("<![CDATA["):
        v = v[len("<![CDATA["):-len("]]>")]
    return v


def now():
    return str(int(time.time()))


# ---- WeCom (wechatpy WeCom crypto) ----
wc = S["wecom"]
wecom = WeComCrypto(wc["token"], wc["encoding_aes_key"], wc["corp_id"])
url_wc = f"{GW}/v1/callbacks/{wc['name']}"

echo_plain = "1616140317555161061"
ts, nonce = now(), "263014780"
encrypted = wecom.encrypt_message(echo_plain, nonce, ts)
echostr, sig = xml_field(encrypted, "Encrypt"), xml_field(encrypted, "MsgSignature")
check("wechatpy accepts the echostr we built", wecom.check_signature(sig, ts, nonce, echostr) == echo_plain)
q = urllib.parse.urlencode({"msg_signature": sig, "timestamp": ts, "nonce": nonce, "echostr": echostr})
status, body = http("GET", f"{url_wc}?{q}")
check("WeCom URL verification answers the decrypted echostr verbatim", (status, body) == (200, echo_plain), (status, body))

wecom_msgid = str(uuid.uuid4().int % 10**19)
wecom_xml = (
    f"<xml><ToUserName><![CDATA[{wc['corp_id']}]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName>"
    f"<CreateTime>{now()}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好, imrelay ✓]]></Content>"
    f"<MsgId>{wecom_msgid}</MsgId><AgentID>1000002</AgentID></xml>"
)
ts, nonce = now(), "1372623149"
encrypted = wecom.encrypt_message(wecom_xml, nonce, ts)
enc, sig = xml_field(encrypted, "Encrypt"), xml_field(encrypted, "MsgSignature")
envelope = (
    f"<xml><ToUserName><![CDATA[{wc['corp_id']}]]></ToUserName><Encrypt><![CDATA[{enc}]]></Encrypt>"
    f"<AgentID><![CDATA[1000002]]></AgentID></xml>"
)
check("wechatpy decrypts the WeCom envelope we built", wecom.decrypt_message(envelope, sig, ts, nonce) == wecom_xml)
q = urllib.parse.urlencode({"msg_signature": sig, "timestamp": ts, "nonce": nonce})
status, body = http("POST", f"{url_wc}?{q}", envelope.encode(), {"Content-Type": "text/xml"})
check("WeCom encrypted message acknowledged", status == 200, (status, body))
status, body = http("POST", f"{url_wc}?{q}", envelope.encode(), {"Content-Type": "text/xml"})
check("WeCom replayed request (same timestamp and nonce) refused with 401", status == 401 and '"check":"replay"' in body,
      (status, body))
retry_ts, retry_nonce = now(), "1372623150"
retried = wecom.encrypt_message(wecom_xml, retry_nonce, retry_ts)
retry_env = envelope.replace(enc, xml_field(retried, "Encrypt"))
rq = urllib.parse.urlencode({"msg_signature": xml_field(retried, "MsgSignature"), "timestamp": retry_ts,
                             "nonce": retry_nonce})
status, _ = http("POST", f"{url_wc}?{rq}", retry_env.encode(), {"Content-Type": "text/xml"})
check("WeCom retry (new nonce, same MsgId) acknowledged (not forwarded again)", status == 200)
bad = urllib.parse.urlencode({"msg_signature": "0" * 40, "timestamp": ts, "nonce": nonce})
status, _ = http("POST", f"{url_wc}?{bad}", envelope.encode(), {"Content-Type": "text/xml"})
check("WeCom wrong msg_signature refused with 401", status == 401, status)

# ---- WeChat Official Account (wechatpy) ----
wx = S["wechat"]
wechat = wechatpy.crypto.WeChatCrypto(wx["token"], wx["encoding_aes_key"], wx["appid"])
url_wx = f"{GW}/v1/callbacks/{wx['name']}"
ts, nonce = now(), "42"
signer = wechatpy.utils.WeChatSigner()
signer.add_data(wx["token"], ts, nonce)
plain_sig = signer.signature
wechatpy.utils.check_signature(wx["token"], plain_sig, ts, nonce)  # raises if wrong
q = urllib.parse.urlencode({"signature": plain_sig, "timestamp": ts, "nonce": nonce, "echostr": "echo-7781"})
status, body = http("GET", f"{url_wx}?{q}")
check("WeChat plain signature GET answers echostr", (status, body) == (200, "echo-7781"), (status, body))

openid = "o" + uuid.uuid4().hex[:27]
wechat_xml = (
    f"<xml><ToUserName><![CDATA[gh_imrelay]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
    f"<CreateTime>{now()}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event></xml>"
)
encrypted = wechat.encrypt_message(wechat_xml, nonce, ts)
enc, msg_sig = xml_field(encrypted, "Encrypt"), xml_field(encrypted, "MsgSignature")
envelope = f"<xml><ToUserName><![CDATA[gh_imrelay]]></ToUserName><Encrypt><![CDATA[{enc}]]></Encrypt></xml>"
q = urllib.parse.urlencode({"signature": plain_sig, "timestamp": ts, "nonce": nonce, "openid": openid,
                            "encrypt_type": "aes", "msg_signature": msg_sig})
status, body = http("POST", f"{url_wx}?{q}", envelope.encode(), {"Content-Type": "text/xml"})
check("WeChat safe-mode POST acknowledged with `success`", (status, body) == (200, "success"), (status, body))

# ---- DingTalk: the same WXBizMsgCrypt scheme, app key as receive id; timestamps in ms ----
dt = S["dingtalk"]
ding = wechatpy.crypto.WeChatCrypto(dt["token"], dt["encoding_aes_key"], dt["app_key"])
url_dt = f"{GW}/v1/callbacks/{dt['name']}"


def ding_post(event):
    ts_ms, nonce = str(int(time.time() * 1000)), uuid.uuid4().hex[:16]
    encrypted = ding.encrypt_message(json.dumps(event, ensure_ascii=False), nonce, ts_ms)
    enc, sig = xml_field(encrypted, "Encrypt"), xml_field(encrypted, "MsgSignature")
    q = urllib.parse.urlencode({"msg_signature": sig, "timestamp": ts_ms, "nonce": nonce})
    return http("POST", f"{url_dt}?{q}", json.dumps({"encrypt": enc}).encode(), {"Content-Type": "application/json"})


def ding_reply_plain(body):
    m = json.loads(body)
    return ding.decrypt_message({"Encrypt": m["encrypt"]}, m["msg_signature"], m["timeStamp"], m["nonce"])


status, body = ding_post({"EventType": "check_url"})
check("DingTalk check_url answered with an encrypted map", status == 200, (status, body))
check("imrelay's encrypted DingTalk reply decrypts with wechatpy to `success`", ding_reply_plain(body) == "success", body)
ding_event = {"EventType": "user_add_org", "UserId": ["manager7"], "CorpId": "ding123", "TimeStamp": now() + "000",
              "note": "新员工 " + uuid.uuid4().hex}
status, body = ding_post(ding_event)
check("DingTalk event acknowledged with encrypted `success`", status == 200 and ding_reply_plain(body) == "success", body)

# ---- Feishu / Lark (lark-oapi) ----
fs = S["feishu"]
url_fs = f"{GW}/v1/callbacks/{fs['name']}"
lark_seen = []
lark_handler = (
    lark.EventDispatcherHandler.builder(fs["encrypt_key"], fs["verification_token"])
    .register_p2_im_message_receive_v1(lambda data: lark_seen.append(data.header.event_id))
    .build()
)


def feishu_encrypt(plaintext):
    key = hashlib.sha256(fs["encrypt_key"].encode()).digest()
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext.encode()) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + enc.update(data) + enc.finalize()).decode()


def feishu_request(event):
    plaintext = json.dumps(event, ensure_ascii=False)
    encrypt = feishu_encrypt(plaintext)
    check_plain = AESCipher(fs["encrypt_key"]).decrypt_str(encrypt)
    assert check_plain == plaintext, "lark-oapi AESCipher must decrypt what we encrypted"
    body = json.dumps({"encrypt": encrypt}).encode()
    ts, nonce = now(), uuid.uuid4().hex[:16]
    sig = hashlib.sha256((ts + nonce + fs["encrypt_key"]).encode() + body).hexdigest()
    headers = {"X-Lark-Request-Timestamp": ts, "X-Lark-Request-Nonce": nonce, "X-Lark-Signature": sig,
               "Content-Type": "application/json; charset=utf-8"}
    # The official SDK must accept the request as a genuine Feishu callback.
    raw = RawRequest()
    raw.uri, raw.headers, raw.body = "/", dict(headers), body
    resp = lark_handler.do(raw)
    assert resp.status_code == 200, f"lark-oapi refused the request we built: {resp.content}"
    return body, headers, resp


challenge = uuid.uuid4().hex
body, headers, lark_resp = feishu_request({"challenge": challenge, "token": fs["verification_token"], "type": "url_verification"})
status, answer = http("POST", url_fs, body, headers)
check("Feishu url_verification answers the challenge as lark-oapi does",
      status == 200 and json.loads(answer) == json.loads(lark_resp.content), (status, answer))

fs_event_id = uuid.uuid4().hex
fs_event = {
    "schema": "2.0",
    "header": {"event_id": fs_event_id, "event_type": "im.message.receive_v1", "create_time": now() + "000",
               "token": fs["verification_token"], "app_id": "cli_imrelay", "tenant_key": "t1"},
    "event": {"sender": {"sender_id": {"open_id": "ou_py"}, "sender_type": "user"},
              "message": {"message_id": "om_py", "chat_id": "oc_py", "chat_type": "group", "message_type": "text",
                          "content": json.dumps({"text": "飞书 hello"}, ensure_ascii=False)}},
}
body, headers, _ = feishu_request(fs_event)
check("lark-oapi dispatched our event", lark_seen == [fs_event_id], lark_seen)
status, answer = http("POST", url_fs, body, headers)
check("Feishu encrypted event acknowledged", status == 200, (status, answer))
tampered = dict(headers)
tampered["X-Lark-Signature"] = "0" * 64
status, _ = http("POST", url_fs, body, tampered)
check("Feishu wrong X-Lark-Signature refused with 401", status == 401, status)

# ---- What imrelay forwarded ----
expected = {"wecom": 1, "wechat": 1, "dingtalk": 1, "feishu": 1}
deadline = time.time() + 20
received = []
while time.time() < deadline:
    _, dump = http("GET", S["received"])
    received = json.loads(dump)
    if len(received) >= sum(expected.values()):
        break
    time.sleep(0.1)
check("every event forwarded exactly once (handshakes and replays not)", len(received) == 4, len(received))
wh = standardwebhooks.Webhook(S["whsec"])
docs = {}
for r in received:
    payload = r["body"].encode("utf-8")
    doc = wh.verify(payload, r["headers"])  # raises WebhookVerificationError
    docs[doc["platform"]] = doc
check("every forward's Standard Webhooks signature verifies with `standardwebhooks`", set(docs) == set(expected), docs.keys())

d = docs["wecom"]
check("WeCom forward carries the decrypted XML", d["raw_xml"] == wecom_xml and d["raw"]["Content"] == "你好, imrelay ✓", d)
check("WeCom forward is normalized", d["type"] == "message_received" and d["data"]["text"] == "你好, imrelay ✓"
      and d["event_id"] == f"msg:{wecom_msgid}", d)
d = docs["wechat"]
check("WeChat forward carries the decrypted event", d["raw_xml"] == wechat_xml and d["type"] == "user_followed"
      and d["data"]["user"] == openid, d)
d = docs["dingtalk"]
check("DingTalk forward carries the decrypted event", d["raw"] == ding_event and d["event_type"] == "user_add_org", d)
d = docs["feishu"]
check("Feishu forward carries the decrypted event", d["raw"] == fs_event and d["event_id"] == fs_event_id
      and d["type"] == "message_received" and d["data"]["text"] == "飞书 hello", d)

print(f"{len(CHECKS)} passed, 0 failed", flush=True)
