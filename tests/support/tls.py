"""Test certificates, made at test time with `cryptography`: a CA, a broker and a client.

`make_pki(dir)` writes PEM files: the CA (`ca.pem`), the broker's key and chain in one file
(`broker.pem`, as Kafka's PEM keystore reads it), a client certificate and key signed by the
same CA (`client.pem`, `client-key.pem`), and a second, unrelated CA (`other-ca.pem`) for
"not trusted" tests. The broker certificate names `localhost` and `127.0.0.1`, so clients
verify host names as in production.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pki:
    ca: Path
    broker: Path          # key + certificate chain, PEM (Kafka `ssl.keystore.type=PEM`)
    client_cert: Path
    client_key: Path
    other_ca: Path        # a CA that signed nothing here


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: str, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.timezone.utc)
    return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2)))


def _ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    cert = (_builder(common_name, _name(common_name), key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def _leaf(common_name: str, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, *, server: bool
          ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    builder = (_builder(common_name, ca.subject, key.public_key())
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                     else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = _ca("convoy-stream test CA")
    broker_key, broker = _leaf("localhost", ca_key, ca, server=True)
    client_key, client = _leaf("convoy-stream-client", ca_key, ca, server=False)
    _, other = _ca("some other CA")
    pki = Pki(ca=directory / "ca.pem", broker=directory / "broker.pem", client_cert=directory / "client.pem",
              client_key=directory / "client-key.pem", other_ca=directory / "other-ca.pem")
    pki.ca.write_bytes(_pem_cert(ca))
    pki.broker.write_bytes(_pem_key(broker_key) + _pem_cert(broker) + _pem_cert(ca))
    pki.client_cert.write_bytes(_pem_cert(client))
    pki.client_key.write_bytes(_pem_key(client_key))
    pki.other_ca.write_bytes(_pem_cert(other))
    return pki
