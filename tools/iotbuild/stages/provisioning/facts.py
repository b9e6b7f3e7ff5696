"""Device facts for the simulator: condition name → value, from JSON or a flat YAML mapping.

Values are compared as text (provisioning-ppkg.md §3.1: digit strings keep their leading zeros), so write
``MNC: "01"``, not ``MNC: 01``. JSON numbers and booleans are accepted and turned into text (``true`` → ``1``,
the Boolean 1/0 of Roaming, AoAc, Server). YAML: the flat ``Name: value`` subset, read without PyYAML —
nested mappings and lists are refused (one device per file).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ...errors import InputError

_YAML_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.\-]*)\s*:(?:\s+(.*?))?\s*$")


def load_facts(path: str | Path) -> dict[str, str]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError("device facts file not found", path=path,
                         hint="give a JSON or YAML file such as {\"MCC\": \"310\", \"Region\": \"US\"}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read device facts: {e}", path=path, hint="save it as UTF-8 text") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        return _from_json(text, path)
    return _from_yaml(text, path)


def _scalar(name: str, value: object, path: Path, line: int | None) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    raise InputError(f"fact {name!r} is not a single value", path=path, line=line,
                     hint="give each condition name one text value, e.g. \"MCC\": \"310\"")


def _from_json(text: str, path: Path) -> dict[str, str]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"device facts are not valid JSON: {e.msg}", path=path, line=e.lineno,
                         hint="fix the JSON at that line") from None
    if not isinstance(doc, dict):
        raise InputError("device facts must be a JSON object of name → value", path=path, line=1,
                         hint='write {"MCC": "310", "Region": "US"}')
    facts: dict[str, str] = {}
    seen: dict[str, str] = {}
    for k, v in doc.items():
        if k.lower() in seen:
            raise InputError(f"fact {k!r} is given twice (also as {seen[k.lower()]!r}; names are case-insensitive)",
                             path=path, hint="keep one")
        seen[k.lower()] = k
        facts[k] = _scalar(k, v, path, None)
    return facts


def _from_yaml(text: str, path: Path) -> dict[str, str]:
    facts: dict[str, str] = {}
    seen: dict[str, int] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip() or line.strip() == "---":
            continue
        m = _YAML_LINE.match(line)
        if not m or raw[:1].isspace():
            raise InputError(f"line {raw.strip()!r} is not 'Name: value'", path=path, line=n,
                             hint="device facts are a flat mapping, one 'Name: value' per line (MCC: \"310\")")
        name, value = m.group(1), m.group(2) or ""
        if not value:
            raise InputError(f"fact {name!r} has no value", path=path, line=n,
                             hint=f"write {name}: <value> (nested mappings and lists are not supported)")
        if value[:1] in "\"'":
            if len(value) < 2 or value[-1] != value[0]:
                raise InputError(f"fact {name!r}: unterminated quote", path=path, line=n, hint="close the quote")
            value = value[1:-1]
        elif value.lower() in ("true", "false"):
            value = "1" if value.lower() == "true" else "0"
        elif value[:1] in "[{|>&*!":
            raise InputError(f"fact {name!r}: only plain values are supported", path=path, line=n,
                             hint="give one text value per name")
        if name.lower() in seen:
            raise InputError(f"fact {name!r} is given twice (first at line {seen[name.lower()]}; names are "
                             "case-insensitive)", path=path, line=n, hint="keep one")
        seen[name.lower()] = n
        facts[name] = value
    return facts
