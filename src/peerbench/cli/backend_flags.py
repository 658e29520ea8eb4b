"""The backend flags of `peerbench run` (--base-url, --lora, ...), read from the options metadata
of every registered backend, a plugin's as much as a built-in's: ``Field(...,
json_schema_extra={"flag": "--region"})`` on a backend's options gives `run` a ``--region`` flag
that sets that option. The CLI names no backend; `peerbench --help` loads no plugin for this."""

from __future__ import annotations

from typing import Any

import click

DEST_PREFIX = "backend_flag__"


def declared_flags() -> dict[str, tuple[str, list[str], str]]:
    """flag -> (option name, backends declaring it, help): the first declaration of a flag names its option."""
    from peerbench.registry import registries

    backends = registries().backends
    flags: dict[str, tuple[str, list[str], str]] = {}
    for name in backends.names():
        fields = getattr(getattr(backends.get(name).value, "Options", None), "model_fields", {})
        for option, info in fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            flag = extra.get("flag")
            if not flag:
                continue
            known = flags.setdefault(flag, (option, [], info.description or ""))
            if known[0] == option:
                known[1].append(name)
    return flags


def flag_options() -> list[click.Option]:
    options = []
    for flag, (option, backends, description) in sorted(declared_flags().items()):
        text = f"{description}; " if description and len(backends) == 1 else ""
        many = " Repeat to spread the run over several servers (data parallel)." if option == "base_url" else ""
        options.append(click.Option([flag, DEST_PREFIX + option], multiple=option == "base_url", metavar="VALUE",
                                    help=f"{text}sets option {option!r} of: {', '.join(backends)}.{many}"))
    return options


def options_from_flags(values: dict[str, Any]) -> dict[str, Any]:
    """The backend options the given flags set (flags left out are not set)."""
    options = {}
    for key, value in values.items():
        if not key.startswith(DEST_PREFIX) or value is None or value == ():
            continue
        # a repeated flag (--base-url) gives a tuple: one value is that value, several a list
        options[key[len(DEST_PREFIX):]] = (value[0] if len(value) == 1 else list(value)) \
            if isinstance(value, tuple) else value
    return options


class WithBackendFlags(click.Command):
    """A command whose parameters include the registered backends' flags, as registered now."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        static = [p for p in self.params if not (p.name or "").startswith(DEST_PREFIX)]
        self.params = [*static, *flag_options()]
        return super().get_params(ctx)
