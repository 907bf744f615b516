"""The wire layer: pure, sans-I/O translation between bytes and llmcomm's data.

`_sse` frames Server-Sent Events and JSON lines; `_anthropic` and `_openai` decode
each wire's events into `StreamChunk`s (`_decoder` holds what they share). Nothing
here does I/O or imports the providers; the providers feed it what they read.
"""
