"""The one place where firebase-admin, google-auth and requests errors become botmox errors.

Messages name the failure class and what to check, never the SDK's own text (which can carry
URLs and response bodies).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import google.auth.exceptions
import requests
from firebase_admin import exceptions as firebase_exceptions

from botmox_core.errors import BotmoxError, DatabaseError, ServiceUnavailableError

__all__ = ["map_rtdb_errors"]


@contextmanager
def map_rtdb_errors(operation: str) -> Iterator[None]:
    """Run a block of RTDB calls; re-raise SDK failures as botmox errors.

    * connection failures and timeouts → :class:`ServiceUnavailableError` (503, retryable);
    * a missing ``.indexOn`` → :class:`DatabaseError` telling the operator to deploy the rules
      printed by ``python -m botmox_rtdb.rules``;
    * refused credentials → :class:`DatabaseError` naming the credential problem;
    * any other database answer → :class:`DatabaseError` (502).

    :class:`BotmoxError` raised inside the block passes through unchanged.
    """
    try:
        yield
    except BotmoxError:
        raise
    except (firebase_exceptions.UnavailableError, firebase_exceptions.DeadlineExceededError):
        raise ServiceUnavailableError(
            f"Firebase Realtime Database unreachable during {operation}"
        ) from None
    except firebase_exceptions.InvalidArgumentError as exc:
        if "Index not defined" in str(exc):
            raise DatabaseError(
                f"RTDB index missing for {operation}: deploy the rules printed by "
                "`python -m botmox_rtdb.rules`"
            ) from None
        raise DatabaseError(f"RTDB rejected the request during {operation}") from None
    except (
        firebase_exceptions.UnauthenticatedError,
        firebase_exceptions.PermissionDeniedError,
    ):
        raise DatabaseError(
            f"RTDB refused the credentials during {operation}: check the service account "
            "and its database access"
        ) from None
    except firebase_exceptions.FirebaseError as exc:
        raise DatabaseError(
            f"RTDB error during {operation} ({type(exc).__name__})"
        ) from None
    except google.auth.exceptions.GoogleAuthError as exc:
        raise DatabaseError(
            f"cannot obtain Google credentials for RTDB during {operation} "
            f"({type(exc).__name__})"
        ) from None
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout):
        raise ServiceUnavailableError(
            f"Firebase Realtime Database unreachable during {operation}"
        ) from None
    except requests.exceptions.RequestException as exc:
        raise DatabaseError(
            f"RTDB request failed during {operation} ({type(exc).__name__})"
        ) from None
