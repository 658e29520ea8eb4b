"""The run loop, one module per stage: plan -> prepare -> dispatch -> collect -> store, driven by
``execute``; ``probes`` and ``sweep`` run it several times."""
