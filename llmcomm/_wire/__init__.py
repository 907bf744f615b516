"""The wire layer: pure, sans-I/O translation between llmcomm's data and bytes.

`_sse` frames Server-Sent Events and JSON lines; `_anthropic` and `_openai` decode each
wire's events into `StreamChunk`s (`_decoder` holds what they share); `_requests` derives
each provider's endpoint and headers and encodes request bodies; `_status` maps an HTTP
error status to the llmcomm error tree. Nothing here does I/O: the providers send what it
builds and feed it what they read.
"""
