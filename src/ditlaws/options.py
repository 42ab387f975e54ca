"""The one configuration mechanism: dataclass fields declared with `option(...)` build every YAML section and CLI.

A field carries its help text and its constraints; values from YAML and from the command line go through the same
coercion (`coerce`) and the same checks (`validate`), so an option is added in one place:

    @dataclass
    class TrainConfig:
        lr: float = option(1e-4, help="peak learning rate", gt=0)

and `--train.lr 3e-4` (train_dit.py), `train: {lr: 3e-4}` (YAML) and `lr=float("nan")` (Python) are all checked
alike. Every float must be finite unless the field says `allow_inf=True`. Cross-field rules live in an optional
`check(self)` method of the dataclass, called after the per-field checks.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import reprlib
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from ditlaws.errors import UserError

_META = "ditlaws"


def option(default: Any = dataclasses.MISSING, *, help: str, default_factory: Any = dataclasses.MISSING,
           ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None,
           choices: tuple | None = None, allow_inf: bool = False, flag: str | None = None, cli: str | None = None,
           metavar: str | None = None) -> Any:
    """A dataclass field with help text and constraints (applied to each element of a list or tuple).

    `cli`: how a list is given on the command line, "comma" (`--metrics loss,fid`) or "nargs" (`--predict 1e12 1e13`).
    `flag`: the kebab-style flag when it is not `--field-name`; for a boolean that defaults to true, the flag
    (e.g. `--no-parametric`) turns it off."""
    if cli not in (None, "comma", "nargs"):
        raise ValueError(f"option cli must be None, 'comma' or 'nargs', got {cli!r}")
    meta = {_META: {"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices,
                    "allow_inf": allow_inf, "flag": flag, "cli": cli, "metavar": metavar}}
    if isinstance(default, (list, dict, set)):
        raise ValueError("use default_factory for mutable defaults")
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


def spec(f: dataclasses.Field) -> dict:
    """A field's option metadata (fields declared without `option` get help '' and no constraints)."""
    return f.metadata.get(_META) or {"help": "", "ge": None, "gt": None, "le": None, "lt": None, "choices": None,
                                     "allow_inf": False, "flag": None, "cli": None, "metavar": None}


# ---------------------------------------------------------------------------------------------------------------
# Building a section from a mapping


def section_from_dict(cls: type, values: dict[str, Any] | None, section: str) -> Any:
    """A validated `cls` from a mapping: unknown keys are errors (with a suggestion), values coerced losslessly."""
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise UserError(f"{section}: must be a mapping of keys, got {_show(values)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            raise UserError(f"{section}.{key}: unknown key{_suggest(str(key), names)}; valid keys: {', '.join(names)}")
        kwargs[key] = coerce(value, hints[key], f"{section}.{key}")
    required = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in kwargs
                and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if required:
        raise UserError(f"{section}.{required[0]} is required ({spec(_field(cls, required[0]))['help']})")
    return validate(cls(**kwargs), section)


def _field(cls: type, name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(cls) if f.name == name)


def coerce(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against a type hint, converting only where it is lossless (int -> float, "1e15" -> 1e15)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(value, CliText):
        value = _cli_value(value, hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option_type in (a for a in args if a is not type(None)):
            try:
                return coerce(value, option_type, key)
            except UserError as err:
                errors.append(err)
        raise errors[0]
    if origin is Literal:
        if isinstance(value, bool) and ("yes" if value else "no") in args:  # YAML 1.1 reads `no` as false
            value = "yes" if value else "no"
        if value not in args:
            raise UserError(f"{key}: {_show(value)} is not valid; choose one of {', '.join(map(str, args))}")
        return value
    if origin in (list, tuple):
        if isinstance(value, str) and "," in value:  # a comma list from the command line
            value = [CliText(v.strip()) for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{key}: expected a list, got {_show(value)}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise UserError(f"{key}: expected {len(args)} values, got {len(value)}")
            return tuple(coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        inner = args[0] if args else Any
        return origin(coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{key}: expected a mapping, got {_show(value)}")
        return dict(value)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        return section_from_dict(hint, value, key)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise UserError(f"{key}: expected true or false, got {_show(value)}")
    if hint is int:
        if isinstance(value, str):
            value = _yaml_scalar(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise UserError(f"{key}: expected an integer, got {_show(value)}")
    if hint is float:
        if isinstance(value, str):
            value = _yaml_scalar(value)
        if isinstance(value, str) and value.strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
            value = float(value)  # rejected by `validate` unless the field allows infinity
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise UserError(f"{key}: expected a number, got {_show(value)}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise UserError(f"{key}: expected a string, got {_show(value)}")
    return value


def validate(obj: Any, section: str) -> Any:
    """Per-field checks (finite floats, ranges, choices, nested sections), then the class's own `check()`."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{section}.{f.name}"
        s = spec(f)
        items = value if isinstance(value, (list, tuple)) else [value]
        for i, item in enumerate(items):
            where = key if items is not value else f"{key}[{i}]"
            if dataclasses.is_dataclass(item) and not isinstance(item, type):
                validate(item, where)
                continue
            _check_value(item, s, where)
    check = getattr(obj, "check", None)
    if callable(check):
        check()
    return obj


def _check_value(value: Any, s: dict, key: str) -> None:
    if value is None or isinstance(value, bool):
        return
    if s["choices"] is not None and value not in s["choices"]:
        raise UserError(f"{key}: {_show(value)} is not valid; choose one of {', '.join(map(str, s['choices']))}")
    if not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and math.isnan(value):
        raise UserError(f"{key} must be a finite number, got nan")
    if isinstance(value, float) and math.isinf(value) and not s["allow_inf"]:
        raise UserError(f"{key} must be a finite number, got {value}")
    for bound, ok, words in (("gt", lambda v, b: v > b, "> {}"), ("ge", lambda v, b: v >= b, ">= {}"),
                             ("lt", lambda v, b: v < b, "< {}"), ("le", lambda v, b: v <= b, "<= {}")):
        limit = s[bound]
        if limit is not None and not ok(value, limit):
            raise UserError(f"{key} must be {words.format(_num(limit))}, got {_num(value)}")


# ---------------------------------------------------------------------------------------------------------------
# Command lines


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line `error: ...` (exit 2), as every other bad input."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def flag_of(f: dataclasses.Field, style: str, section: str | None) -> str:
    if style == "dotted":
        return f"--{section}.{f.name}" if section else f"--{f.name}"
    s = spec(f)
    if s["flag"]:
        return s["flag"]
    return "--" + f.name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, cls: type, *, style: str = "kebab", section: str | None = None,
                  exclude: tuple[str, ...] = (), group_title: str | None = None) -> None:
    """One flag per field of `cls`, help from the field. Values stay strings until `from_arguments` coerces them;
    flags not given are absent from the namespace (argparse.SUPPRESS)."""
    if style not in ("kebab", "dotted"):
        raise ValueError(f"style must be 'kebab' or 'dotted', got {style!r}")
    target = parser.add_argument_group(group_title) if group_title else parser
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in exclude or not f.init:
            continue
        s = spec(f)
        dest = _dest(f.name, section if style == "dotted" else None)
        text = help_text(f, hints[f.name])
        if style == "kebab" and hints[f.name] is bool:
            turn_on = _default(f) is not True
            flag = s["flag"] or ("--" + ("" if turn_on else "no-") + f.name.replace("_", "-"))
            target.add_argument(flag, dest=dest, action="store_const", const=turn_on, default=argparse.SUPPRESS,
                                help=s["help"])
            continue
        kwargs = {"dest": dest, "default": argparse.SUPPRESS, "help": text, "metavar": s["metavar"]}
        if s["cli"] == "nargs":
            kwargs["nargs"] = "+"
        target.add_argument(flag_of(f, style, section), **kwargs)


def from_arguments(cls: type, namespace: argparse.Namespace, *, section: str, base: dict | None = None) -> Any:
    """`cls` from the flags given on the command line, over `base` (e.g. a YAML section), validated."""
    given = {}
    for f in dataclasses.fields(cls):
        for dest in (_dest(f.name, section), f.name):  # dotted flags carry their section, kebab flags do not
            if hasattr(namespace, dest):
                given[f.name] = getattr(namespace, dest)
                if spec(f)["cli"] == "comma" and isinstance(given[f.name], str):  # "loss" is a list of one
                    given[f.name] = [v.strip() for v in given[f.name].split(",") if v.strip()]
                break
    values = dict(base or {})
    for name, value in given.items():
        values[name] = _from_cli(value)
    return section_from_dict(cls, values, section)


def _dest(name: str, section: str | None) -> str:
    return f"{section}__{name}" if section else name


def _from_cli(value: Any) -> Any:
    if isinstance(value, list):
        return [CliText(v) if isinstance(v, str) else v for v in value]
    return CliText(value) if isinstance(value, str) else value


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """`["--train.lr", "3e-4", "--model.depth=6"]` -> {"train.lr": "3e-4", "model.depth": "6"}: values stay
    `CliText` until `coerce` reads them for their field (a str field keeps them as typed); the last of a repeated
    flag wins."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or "." not in arg:
            raise UserError(f"unexpected argument {arg!r}; overrides look like --section.key value")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args):
                raise UserError(f"--{key}: missing value")
            value = args[i + 1]
            i += 1
        out[key] = CliText(value)  # a flag given again overrides (as with argparse); YAML keys may not repeat
        i += 1
    return out


def valid_values(f: dataclasses.Field, hint: Any) -> tuple | None:
    """The values an enumerated key takes: its `choices`, or the members of a `Literal` type (also inside
    `X | None` and lists); None for an open key."""
    if spec(f)["choices"] is not None:
        return tuple(spec(f)["choices"])

    def members(h):
        origin, args = typing.get_origin(h), typing.get_args(h)
        if origin is Literal:
            return args
        if origin in (Union, types.UnionType, list, tuple):
            return next((m for m in (members(a) for a in args) if m), None)
        return None

    return members(hint)


def help_text(f: dataclasses.Field, hint: Any, with_default: bool = True) -> str:
    """A key's help as --help shows it: the text, its valid values when enumerated, and its default."""
    values = valid_values(f, hint)
    several = typing.get_origin(hint) in (list, tuple)
    text = spec(f)["help"] + (f"; {'any' if several else 'one'} of: {', '.join(map(str, values))}" if values else "")
    default = _default(f)
    return text + (f" (default: {_show(default)})" if with_default and default not in (None, (), []) else "")


def section_help(sections: dict[str, type]) -> str:
    """Every key of every section with its help text, for a CLI's epilog (`train_dit.py --help`)."""
    lines = []
    for name, cls in sections.items():
        lines.append(f"{name}:")
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.init:
                lines.append(f"  {'--' + name + '.' + f.name:<34} {help_text(f, hints[f.name])}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# YAML files: bounded, and a key given twice is an error (YAML itself keeps the last one silently)

MAX_YAML_BYTES = 1 << 20  # a config file is a few KB; a bigger one is not a config
MAX_YAML_VALUES = 100_000  # values after aliases are expanded (393 bytes of nested aliases make billions)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated in one mapping (naming it and its lines)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # the base class reports unhashable keys
            if key in seen:
                raise UserError(f"key {key!r} is given twice in one mapping (lines {seen[key] + 1} and "
                                f"{key_node.start_mark.line + 1}); YAML would keep only the last, remove one")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_yaml_file(path: str | Path, what: str = "config") -> Any:
    """A YAML file's content, checked: at most MAX_YAML_BYTES (before reading), UTF-8, valid YAML, no repeated
    key, at most MAX_YAML_VALUES values once aliases are expanded. Errors are UserErrors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {what} file not found")
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise UserError(f"{path}: {size:,} bytes; a {what} file is at most {MAX_YAML_BYTES:,} bytes")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (byte {err.start}); save the {what} as UTF-8") from None
    try:
        value = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except UserError as err:
        raise UserError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    except RecursionError:
        raise UserError(f"{path}: nested too deeply (or a recursive alias)") from None
    if _count_values(value, MAX_YAML_VALUES) > MAX_YAML_VALUES:
        raise UserError(f"{path}: expands to more than {MAX_YAML_VALUES:,} values (YAML aliases?); a {what} is "
                        "a small mapping")
    return value


def _count_values(value: Any, limit: int) -> int:
    """Values in a nested structure, counting shared (aliased) parts each time they appear; stops past `limit`."""
    count, stack = 0, [value]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return count


# ---------------------------------------------------------------------------------------------------------------
# Text helpers


class CliText(str):
    """A value typed on the command line: a string until the field it is for says what it should be (a str field
    keeps it as typed: `--train.output_dir '#x'`, `1.5`, `12:30` are folder names, not YAML)."""


def _cli_value(value: CliText, hint: Any) -> Any:
    """A command-line string read for a field of type `hint`: kept for str, parsed (as YAML) for anything else."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is str or hint is Any:
        return str(value)
    if origin in (Union, types.UnionType):
        if type(None) in args and value in ("null", "~", "None", "none"):
            return None
        if str in args and not (value.lstrip().startswith(("[", "{")) and any(
                typing.get_origin(a) in (list, tuple, dict) for a in args)):
            return str(value)
    if origin in (list, tuple) and not value.lstrip().startswith("["):
        return [CliText(v.strip()) for v in value.split(",") if v.strip()]  # a comma list, or a list of one
    return _yaml_scalar(str(value))


def _yaml_scalar(text: str) -> Any:
    if text.lower() in ("yes", "no", "on", "off", "y", "n"):  # YAML 1.1 booleans; on the command line they are words
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):  # YAML 1.1 reads "1e15" (no dot) as a string; numbers are what users mean
        try:
            return float(value) if any(c in value.lower() for c in "e.") else value
        except ValueError:
            return value
    return value


def _suggest(key: str, names: list[str]) -> str:
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _num(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


_REPR = reprlib.Repr()  # Python 3.11: limits are attributes, not constructor arguments
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 3, 6, 6, 6, 6
_REPR.maxstring, _REPR.maxother = 50, 50


def _show(value: Any) -> str:
    """A short repr that never formats the whole value (a YAML alias bomb expands to billions of items)."""
    text = _REPR.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def fail(message: str, code: int = 2) -> typing.NoReturn:
    """Print a one-line error and exit (for scripts' top level)."""
    from ditlaws.errors import report

    raise SystemExit(report(message, code))
