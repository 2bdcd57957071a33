"""Logging in to vCenter: the password's source, TLS verification, and faults as one line.

pyVim's SmartConnect silently skips certificate verification for localhost unless it is
given an SSL context, so a context is always built here: verified against the system's CAs
(or `ca_file`) by default, unverified only with `insecure`.
"""

from __future__ import annotations

import contextlib
import getpass
import http.client
import os
import ssl
import sys
import threading

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl

from ..errors import LabError
from .settings import VSphereSettings

CONNECT_TIMEOUT = 30

# Typed answers, kept in this process only (never in its environment, which children
# inherit): a class's threads all need the password, and the user types it once.
_typed: dict[tuple[str, str, str], str] = {}
_asking = threading.Lock()


def resolve_password(settings: VSphereSettings) -> str:
    """The password from its environment variable, else a prompt when someone is there to answer.

    Many threads may ask at once (one per student): the first prompts, the others wait for
    its answer instead of each printing a prompt and competing for the typed line.
    """
    value = os.environ.get(settings.password_env)
    if value:
        return value
    key = (settings.password_env, settings.user, settings.endpoint)
    with _asking:
        if key in _typed:
            return _typed[key]
        if sys.stdin is not None and sys.stdin.isatty():
            value = getpass.getpass(f"vSphere password for {settings.user} at {settings.host}: ")
            if value:
                _typed[key] = value
                return value
    raise LabError(
        f"no vSphere password for {settings.user}: set {settings.password_env}"
        " (the lab file never holds it) or run interactively to be asked"
    )


def ssl_context(settings: VSphereSettings) -> ssl.SSLContext:
    if settings.insecure:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=settings.ca_file)


def fault_text(fault: BaseException) -> str:
    """vSphere's own message of a fault, with its type: the part a user can search for."""
    name = getattr(fault, "_wsdlName", None) or type(fault).__name__
    message = (getattr(fault, "msg", None) or "").strip()
    if not message or message.startswith("*types."):  # vcsim's msg is a Go type name
        return name
    return f"{message} ({name})"


def connect(settings: VSphereSettings, password: str) -> vim.ServiceInstance:
    """Log in; every way this can fail becomes one LabError naming the endpoint."""
    endpoint = settings.endpoint
    try:
        return SmartConnect(
            host=settings.host,
            port=settings.port,
            user=settings.user,
            pwd=password,
            sslContext=ssl_context(settings),
            httpConnectionTimeout=CONNECT_TIMEOUT,
        )
    except vim.fault.InvalidLogin as exc:
        raise LabError(
            f"vCenter {endpoint} refused the login of {settings.user}: {fault_text(exc)};"
            f" check the user and {settings.password_env}"
        ) from None
    except ssl.SSLCertVerificationError as exc:
        raise LabError(
            f"vCenter {endpoint}: certificate refused ({exc.verify_message}); give the CA that"
            " signed it in vmware.ca_file, or pass --insecure for a lab vCenter with a"
            " self-signed certificate"
        ) from None
    except ssl.SSLError as exc:
        raise LabError(f"vCenter {endpoint}: TLS failed ({exc.reason or exc})") from None
    except vmodl.MethodFault as exc:
        raise LabError(f"vCenter {endpoint}: login failed: {fault_text(exc)}") from None
    except (OSError, http.client.HTTPException) as exc:  # TimeoutError is an OSError
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise LabError(
            f"vCenter {endpoint} is unreachable: {reason}; check vmware.vcenter and that"
            " vCenter runs"
        ) from None


def disconnect(service: vim.ServiceInstance) -> None:
    # Logging out of a vCenter that went away leaves nothing to clean up.
    with contextlib.suppress(OSError, http.client.HTTPException, vmodl.MethodFault):
        Disconnect(service)
