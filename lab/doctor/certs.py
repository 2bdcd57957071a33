"""Certificate dates: from `openssl x509 -startdate -enddate` output where the node has
openssl, else from the PEM itself, parsed here with python's cryptography."""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass

from cryptography import x509


@dataclass(frozen=True)
class CertDates:
    not_before: float = 0.0  # epoch seconds
    not_after: float = 0.0
    error: str = ""  # could not be read


def _openssl_date(value: str) -> float:
    # "Nov 27 03:09:00 2026 GMT"; single-digit days come space-padded.
    parsed = time.strptime(" ".join(value.split()), "%b %d %H:%M:%S %Y %Z")
    return float(calendar.timegm(parsed))


def parse_cert(text: str) -> CertDates:
    try:
        if "-----BEGIN CERTIFICATE-----" in text:
            cert = x509.load_pem_x509_certificate(text.encode())
            return CertDates(cert.not_valid_before_utc.timestamp(),
                             cert.not_valid_after_utc.timestamp())
        values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        return CertDates(_openssl_date(values["notBefore"]), _openssl_date(values["notAfter"]))
    except (KeyError, ValueError) as exc:
        return CertDates(error=f"unreadable certificate ({exc})")
