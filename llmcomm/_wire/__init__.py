"""The wire layer: pure, sans-I/O translation between llmcomm's data and bytes.

`_requests` derives each provider's endpoint and headers and encodes request
bodies; `_status` maps an HTTP error status to the llmcomm error tree. Nothing
here does I/O or imports the providers; the providers send what it builds.
"""
