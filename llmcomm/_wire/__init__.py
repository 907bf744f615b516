"""The wire layer: pure, sans-I/O translation between llmcomm's data and bytes.

`_requests` derives each provider's endpoint and headers and encodes request
bodies; `_status` maps an HTTP error status to the llmcomm error tree (with the
status classification it still borrows from `providers._base`). Nothing here
does I/O: the providers send what it builds.
"""
