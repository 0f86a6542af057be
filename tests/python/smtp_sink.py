"""A real SMTP server (aiosmtpd) for the email destination's integration test.

Usage:
  smtp_sink.py --out DIR [--port N] [--starttls | --tls] [--auth USER:PASS]
               [--reject ADDR]... [--tempfail ADDR]...

Listens on 127.0.0.1 (port 0 = any free port). With --starttls or --tls it
first generates, in DIR, a throwaway CA (ca.pem) and a server certificate it
signs for 127.0.0.1 and localhost, and offers STARTTLS (RFC 3207) or speaks TLS
from the first byte (RFC 8314). --auth requires AUTH PLAIN/LOGIN with those
credentials (only offered once TLS is up, as aiosmtpd does by default).
--reject answers RCPT TO for that address with 550, --tempfail with 450.
Each AUTH attempt adds a line (the mechanism) to DIR/auth.log.

Prints one JSON line {"ready": true, "port": N, "ca": PATH|null} once it
accepts connections, then writes every accepted message, before answering its
DATA, to DIR/msg-NNN.json: {"mail_from", "rcpt_tos", "data" (raw), "tls",
"auth_user", "parsed" (headers and parts as Python's email package decodes them)}.
So once the client has its 250, the file is there.
"""

import argparse
import asyncio
import datetime
import ipaddress
import json
import logging
import os
import ssl
import sys
import warnings
from email import policy
from email.parser import BytesParser

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def make_certs(out):
    """A CA and a server certificate signed by it (so the client verifies a
    real chain, not a self-signed leaf)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=1)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imrelay test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    ca_path = os.path.join(out, "ca.pem")
    cert_path = os.path.join(out, "server.pem")
    key_path = os.path.join(out, "server.key")
    with open(ca_path, "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(cert_path, "wb") as f:
        f.write(leaf.public_bytes(serialization.Encoding.PEM))
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_path, key_path)
    return ctx, ca_path


class Sink:
    def __init__(self, out, reject, tempfail):
        self.out = out
        self.reject = {a.lower() for a in reject}
        self.tempfail = {a.lower() for a in tempfail}
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if address.lower() in self.tempfail:
            return f"450 4.2.1 <{address}>: Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.original_content.decode("utf-8", "surrogateescape"),
            "tls": session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
            "auth_user": (
                session.auth_data.login.decode()
                if isinstance(session.auth_data, LoginPassword)
                else None
            ),
            "parsed": parse(envelope.original_content),
        }
        path = os.path.join(self.out, f"msg-{self.count:03}.json")
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False)
        os.replace(tmp, path)
        return "250 2.0.0 Ok: queued"


def parse(raw):
    """The message as Python's own email package reads it (RFC 2047 headers
    and quoted-printable/base64 bodies decoded), so the test checks what a
    mail client would show, not the encoder's output."""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    parts = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        parts.append(
            {
                "content_type": part.get_content_type(),
                "charset": part.get_content_charset(),
                "transfer_encoding": part.get("Content-Transfer-Encoding"),
                "content": part.get_content(),
            }
        )
    return {
        "subject": str(msg["Subject"]),
        "from": str(msg["From"]),
        "to": [str(a) for a in msg["To"].addresses] if msg["To"] else [],
        "reply_to": str(msg["Reply-To"]) if msg["Reply-To"] else None,
        "message_id": str(msg["Message-ID"]) if msg["Message-ID"] else None,
        "content_type": msg.get_content_type(),
        "parts": parts,
    }


def authenticator_for(out, user, password):
    def check(server, session, envelope, mechanism, auth_data):
        # One line per AUTH attempt, so a test can count them.
        with open(os.path.join(out, "auth.log"), "a", encoding="utf-8") as f:
            f.write(f"{mechanism}\n")
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        # handled=False lets aiosmtpd answer 235 or "535 5.7.8 Authentication
        # credentials invalid" itself.
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    return check


async def main():
    # Keep errors (a refused handshake's traceback), drop aiosmtpd's expected
    # warnings about the modes the test uses on purpose.
    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--port", type=int, default=0)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--starttls", action="store_true")
    mode.add_argument("--tls", action="store_true")
    p.add_argument("--auth")
    p.add_argument("--reject", action="append", default=[])
    p.add_argument("--tempfail", action="append", default=[])
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)

    ctx, ca_path = (None, None)
    if args.starttls or args.tls:
        ctx, ca_path = make_certs(args.out)

    kwargs = {"hostname": "sink.test", "enable_SMTPUTF8": True}
    if args.starttls:
        kwargs.update(tls_context=ctx, require_starttls=True)
    if args.auth:
        user, _, password = args.auth.partition(":")
        kwargs.update(auth_required=True, authenticator=authenticator_for(args.out, user, password))
        # Implicit TLS: the connection is encrypted before SMTP starts, which
        # aiosmtpd's auth_require_tls check does not see.
        if args.tls:
            kwargs.update(auth_require_tls=False)

    handler = Sink(args.out, args.reject, args.tempfail)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, **kwargs),
        host="127.0.0.1",
        port=args.port,
        ssl=ctx if args.tls else None,
    )
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"ready": True, "port": port, "ca": ca_path}), flush=True)
    # Run until the test closes stdin (or kills us).
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
