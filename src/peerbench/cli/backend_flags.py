"""The backend and protocol flags of `peerbench run` (--base-url, --lora, --num-reflections, ...),
read from the options metadata of every registered backend and protocol, a plugin's as much as a
built-in's: ``Field(..., json_schema_extra={"flag": "--region"})`` on a backend's options gives
`run` a ``--region`` flag that sets that option. The CLI names no backend and no protocol;
`peerbench --help` loads no plugin for this."""

from __future__ import annotations

from typing import Any

import click

DEST_PREFIX = "backend_flag__"
PROTOCOL_PREFIX = "protocol_flag__"
KINDS = {"backends": DEST_PREFIX, "protocols": PROTOCOL_PREFIX}


def declared_flags(kind: str = "backends") -> dict[str, tuple[str, list[str], str]]:
    """flag -> (option name, plugins declaring it, help): the first declaration of a flag names its option."""
    from peerbench.registry import registries

    registry = getattr(registries(), kind)
    flags: dict[str, tuple[str, list[str], str]] = {}
    for name in registry.names():
        fields = getattr(getattr(registry.get(name).value, "Options", None), "model_fields", {})
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
    taken: set[str] = set()
    for kind, prefix in KINDS.items():
        for flag, (option, owners, description) in sorted(declared_flags(kind).items()):
            if flag in taken:  # a protocol cannot take a backend's flag; -o NAME=VALUE still reaches it
                continue
            taken.add(flag)
            text = f"{description}; " if description and len(owners) == 1 else ""
            many = " Repeat to spread the run over several servers (data parallel)." if option == "base_url" else ""
            what = "backend" if kind == "backends" else "protocol"
            options.append(click.Option([flag, prefix + option], multiple=option == "base_url", metavar="VALUE",
                                        help=f"{text}sets option {option!r} of {what}: {', '.join(owners)}.{many}"))
    return options


def options_from_flags(values: dict[str, Any], prefix: str = DEST_PREFIX) -> dict[str, Any]:
    """The backend (or protocol) options the given flags set (flags left out are not set)."""
    options = {}
    for key, value in values.items():
        if not key.startswith(prefix) or value is None or value == ():
            continue
        # a repeated flag (--base-url) gives a tuple: one value is that value, several a list
        options[key[len(prefix):]] = (value[0] if len(value) == 1 else list(value)) \
            if isinstance(value, tuple) else value
    return options


class WithBackendFlags(click.Command):
    """A command whose parameters include the registered backends' and protocols' flags, as registered now."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        static = [p for p in self.params if not (p.name or "").startswith(tuple(KINDS.values()))]
        self.params = [*static, *flag_options()]
        return super().get_params(ctx)
