"""llmcomm's errors (the tree is drawn in `llmcomm._errors`); all are also in `llmcomm`."""

from ._errors import AllProvidersFailedError as AllProvidersFailedError
from ._errors import AuthenticationError as AuthenticationError
from ._errors import ConfigurationError as ConfigurationError
from ._errors import InvalidRequestError as InvalidRequestError
from ._errors import LLMException as LLMException
from ._errors import LLMTimeoutError as LLMTimeoutError
from ._errors import OutputValidationError as OutputValidationError
from ._errors import ProviderUnavailableError as ProviderUnavailableError
from ._errors import RateLimitError as RateLimitError
from ._errors import StreamInterruptedError as StreamInterruptedError
from ._errors import ToolLoopError as ToolLoopError
from ._errors import __doc__ as _tree

__doc__ = _tree
__all__ = [
    "AllProvidersFailedError",
    "AuthenticationError",
    "ConfigurationError",
    "InvalidRequestError",
    "LLMException",
    "LLMTimeoutError",
    "OutputValidationError",
    "ProviderUnavailableError",
    "RateLimitError",
    "StreamInterruptedError",
    "ToolLoopError",
]
