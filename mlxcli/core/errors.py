"""Neutral errors. Each provider maps them to its own wire shape and status."""

from __future__ import annotations


class MlxcliError(Exception):
    """Base error: ``kind`` is the neutral category, ``status`` the HTTP status."""

    status = 500
    kind = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else type(self).default_code

    default_code: str | None = None


class InvalidRequest(MlxcliError):
    status = 400
    kind = "invalid_request"


class ContextLengthExceeded(InvalidRequest):
    default_code = "context_length_exceeded"

    def __init__(self, prompt_tokens: int, context_window: int, *, param: str | None = "messages"):
        super().__init__(
            f"This model's maximum context length is {context_window} tokens. "
            f"However, your messages resulted in {prompt_tokens} tokens.",
            param=param,
        )
        self.prompt_tokens = prompt_tokens
        self.context_window = context_window


class AuthenticationFailed(MlxcliError):
    status = 401
    kind = "authentication"
    default_code = "invalid_api_key"


class PermissionDenied(MlxcliError):
    status = 403
    kind = "permission"


class NotFound(MlxcliError):
    status = 404
    kind = "not_found"


class ModelNotFound(NotFound):
    default_code = "model_not_found"


class RouteNotFound(NotFound):
    """No route answers this path (or this method on it: ``MethodNotAllowed``)."""

    default_code = "not_found"

    def __init__(self, message: str = "Unknown route."):
        super().__init__(message)


class MethodNotAllowed(MlxcliError):
    status = 405
    kind = "invalid_request"


class PayloadTooLarge(MlxcliError):
    status = 413
    kind = "too_large"


class Overloaded(MlxcliError):
    """The request queue is full: refuse at once, never wait unboundedly."""

    status = 503
    kind = "overloaded"

    def __init__(self, message: str = "The server is overloaded; retry shortly.", *, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


class ClientClosedRequest(MlxcliError):
    """The client hung up before its answer was ready (nginx's 499; nobody reads it)."""

    status = 499
    kind = "invalid_request"


class EngineFailure(MlxcliError):
    """Generation failed inside the engine (this request only)."""

    status = 500
    kind = "server_error"


class ModelError(MlxcliError):
    """A model could not be resolved, fetched, converted or loaded."""

    status = 500
    kind = "server_error"
