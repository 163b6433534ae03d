"""Errors the product raises on purpose. The GraphQL layer turns them into typed payload
errors (field, code, message); anything else is an internal error and gets masked."""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    INVALID = "INVALID"
    REQUIRED = "REQUIRED"
    TOO_LONG = "TOO_LONG"
    DUPLICATE = "DUPLICATE"
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    INVALID_STATE = "INVALID_STATE"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    HASH_MISMATCH = "HASH_MISMATCH"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    FEATURE_DISABLED = "FEATURE_DISABLED"
    AI_PROVIDER_AUTH = "AI_PROVIDER_AUTH"
    AI_PROVIDER_RATE_LIMITED = "AI_PROVIDER_RATE_LIMITED"
    AI_PROVIDER_UNAVAILABLE = "AI_PROVIDER_UNAVAILABLE"
    AI_PROVIDER_TIMEOUT = "AI_PROVIDER_TIMEOUT"
    AI_CONTENT_REFUSED = "AI_CONTENT_REFUSED"
    AI_CONTEXT_TOO_LONG = "AI_CONTEXT_TOO_LONG"
    BRAND_REQUIRED = "BRAND_REQUIRED"


class DomainError(Exception):
    code: ErrorCode = ErrorCode.INVALID

    def __init__(self, message: str, *, field: str | None = None, code: ErrorCode | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    @property
    def errors(self) -> list[DomainError]:
        return [self]


class ValidationFailed(DomainError):
    """One or more input fields are wrong; nothing was written."""

    def __init__(self, errors: list[DomainError]):
        super().__init__("; ".join(e.message for e in errors), field=errors[0].field)
        self._errors = errors

    @property
    def errors(self) -> list[DomainError]:
        return self._errors


class NotFound(DomainError):
    """Absent, or present but not visible to this principal: the two look the same."""

    code = ErrorCode.NOT_FOUND


class BrandRequired(DomainError):
    """A field that works in one brand was given none: no ``brandId`` and no active brand."""

    code = ErrorCode.BRAND_REQUIRED

    def __init__(self, field: str = "brandId"):
        super().__init__("name a brand: pass brandId or send the X-Brand-Id header", field=field)


class PermissionDenied(DomainError):
    code = ErrorCode.FORBIDDEN


class InvalidState(DomainError):
    code = ErrorCode.INVALID_STATE


class LimitExceeded(DomainError):
    code = ErrorCode.LIMIT_EXCEEDED


class FeatureDisabled(DomainError):
    """A premium module the tenant does not have switched on."""

    code = ErrorCode.FEATURE_DISABLED


class Unauthenticated(Exception):
    """The credential is missing, malformed, expired or revoked."""

    def __init__(self, message: str = "authentication required"):
        super().__init__(message)
        self.message = message


class Validator:
    """Collects field errors so one response names every wrong field."""

    def __init__(self) -> None:
        self.errors: list[DomainError] = []

    def add(self, field: str, message: str, code: ErrorCode = ErrorCode.INVALID) -> None:
        self.errors.append(DomainError(message, field=field, code=code))

    def check(self) -> None:
        if self.errors:
            raise ValidationFailed(self.errors)
