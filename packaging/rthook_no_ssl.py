# PyInstaller runtime hook of the one-file binary: a stand-in for the `ssl` module.
#
# The binary leaves out Python's TLS (_ssl with libssl and libcrypto, about 5 MB): nothing
# in it speaks TLS from Python (PostgreSQL's TLS is rustls, in the Rust core) and the
# dashboard serves plain HTTP. anyio and uvicorn, which the dashboard uses, import `ssl`
# and name a few of its classes and constants at import time; this module gives them
# those names, and anything that tries to make a TLS context gets a clear error.
# ruff: noqa
import enum
import sys
import types


def _install() -> None:
    try:
        import ssl  # noqa: F401  (a build that has it keeps it)

        return
    except ImportError:
        pass
    m = types.ModuleType("ssl", "Stand-in: this queuectl binary has no TLS in Python.")

    class SSLError(OSError):
        pass

    class SSLContext:
        def __init__(self, *args, **kwargs):
            raise SSLError("this queuectl binary has no TLS in Python")

    def create_default_context(*args, **kwargs):
        return SSLContext()

    class Purpose(enum.Enum):
        SERVER_AUTH = "1.3.6.1.5.5.7.3.1"
        CLIENT_AUTH = "1.3.6.1.5.5.7.3.2"

    class VerifyMode(enum.IntEnum):
        CERT_NONE = 0
        CERT_OPTIONAL = 1
        CERT_REQUIRED = 2

    m.SSLError = SSLError
    for name in ("SSLEOFError", "SSLWantReadError", "SSLWantWriteError", "SSLSyscallError",
                 "SSLZeroReturnError", "CertificateError", "SSLCertVerificationError"):
        setattr(m, name, type(name, (SSLError,), {}))
    for name in ("SSLObject", "SSLSocket", "MemoryBIO"):
        setattr(m, name, type(name, (), {}))
    m.SSLContext = SSLContext
    m.create_default_context = create_default_context
    m.Purpose = Purpose
    m.VerifyMode = VerifyMode
    m.CERT_NONE, m.CERT_OPTIONAL, m.CERT_REQUIRED = VerifyMode
    m.PROTOCOL_TLS_SERVER = 17
    m.PROTOCOL_TLS_CLIENT = 16
    m.OP_IGNORE_UNEXPECTED_EOF = 1 << 7
    m.HAS_SNI = False
    sys.modules["ssl"] = m


_install()
