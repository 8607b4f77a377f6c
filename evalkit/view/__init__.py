"""`evalkit view`: a local web viewer over run and sweep directories (loopback only).

index  - one light row per sample (what the table filters, sorts and searches), read once
detail - one case across every option: prompt, tools, expected calls, replies, verdicts, rounds
app    - the HTTP routes (starlette) over the two, and the page
links  - the viewer's address, for report.html's links into it
cli    - the `view` subcommand
"""
