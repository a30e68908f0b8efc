"""The frontend's copy of the protocol (labextension/src/messages.ts) and its npm package
(labextension/package.json) agree with ``ipylogfwd.wire.view_messages``: constants, message type tags,
field names and field kinds, module name and version. Either side changed alone fails here."""

from __future__ import annotations

import json
import re
import types
import typing
from pathlib import Path

import pytest

from ipylogfwd.wire import view_messages

ROOT = Path(__file__).resolve().parent.parent
MESSAGES_TS = ROOT / "labextension" / "src" / "messages.ts"
PACKAGE_JSON = ROOT / "labextension" / "package.json"

MESSAGES = {
    "Lines": view_messages.Lines,
    "BarrierMsg": view_messages.BarrierMsg,
    "Replay": view_messages.Replay,
    "Hello": view_messages.Hello,
    "Ack": view_messages.Ack,
    "Bye": view_messages.Bye,
}
# Not messages themselves but carried in them: checked field by field like the messages.
CARRIED = {"DisplayData": view_messages.DisplayData}
UNIONS = {"ToView": ("Lines", "BarrierMsg", "Replay"), "FromView": ("Hello", "Ack", "Bye")}


def ts_source() -> str:
    text = MESSAGES_TS.read_text(encoding="utf-8")
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)  # block comments
    return re.sub(r"//[^\n]*", "", text)  # line comments


def ts_const(src: str, name: str) -> object:
    m = re.search(rf"export\s+const\s+{name}\s*(?::[^=]+)?=\s*([^;]+);", src)
    assert m, f"messages.ts does not export const {name}"
    return json.loads(m.group(1).strip().replace("'", '"'))


def ts_string_tuple(src: str, name: str) -> tuple[str, ...]:
    m = re.search(rf"export\s+const\s+{name}\s*=\s*\[([^\]]*)\]\s*as\s+const\s*;", src)
    assert m, f"messages.ts does not export const {name} = [...] as const"
    return tuple(re.findall(r"'([^']*)'", m.group(1)))


def ts_interfaces(src: str) -> dict[str, dict[str, str]]:
    """Every `export interface Name { field: type; ... }` as {name: {field: type}}."""
    out: dict[str, dict[str, str]] = {}
    for m in re.finditer(r"export\s+interface\s+(\w+)\s*\{([^}]*)\}", src):
        fields: dict[str, str] = {}
        for line in m.group(2).split(";"):
            line = line.strip()
            if not line:
                continue
            fm = re.fullmatch(r"(?:readonly\s+)?(\w+)\s*:\s*(.+)", line, flags=re.S)
            assert fm, f"interface {m.group(1)}: cannot read field {line!r}"
            fields[fm.group(1)] = " ".join(fm.group(2).split())
        out[m.group(1)] = fields
    return out


def ts_union(src: str, name: str) -> tuple[str, ...]:
    m = re.search(rf"export\s+type\s+{name}\s*=\s*([^;]+);", src)
    assert m, f"messages.ts does not export type {name}"
    return tuple(part.strip() for part in m.group(1).split("|"))


def expected_ts_type(py_type: object) -> str | None:
    """The TypeScript spelling messages.ts must use for a field of this Python type, if fixed."""
    origin = typing.get_origin(py_type)
    if origin is typing.Literal:
        return " | ".join(f"'{value}'" for value in typing.get_args(py_type))
    if py_type is bool:
        return "boolean"
    if py_type is int:
        return "number"
    if py_type is str:
        return "string"
    if origin in (typing.Union, types.UnionType):
        parts = [expected_ts_type(arg) if arg is not type(None) else "null" for arg in typing.get_args(py_type)]
        return None if None in parts else " | ".join(parts)  # type: ignore[arg-type]
    if origin is dict and typing.get_args(py_type)[0] is str:
        return "ReadonlyJSONObject"  # JSON from the kernel: mime data, metadata
    return None


@pytest.fixture(scope="module")
def src() -> str:
    return ts_source()


def test_constants(src: str) -> None:
    assert ts_const(src, "PROTOCOL_VERSION") == view_messages.VIEW_PROTOCOL_VERSION
    assert ts_const(src, "ACK_TARGET") == view_messages.ACK_TARGET
    assert ts_const(src, "CONTROL_MSG_TYPE") == view_messages.CONTROL_MSG_TYPE
    assert ts_const(src, "DISPLAY") == view_messages.DISPLAY


def test_type_tags(src: str) -> None:
    assert ts_string_tuple(src, "TO_VIEW_TYPES") == view_messages.TO_VIEW_TYPES
    assert ts_string_tuple(src, "FROM_VIEW_TYPES") == view_messages.FROM_VIEW_TYPES
    for name, cls in MESSAGES.items():
        (tag,) = typing.get_args(typing.get_type_hints(cls)["type"])
        assert tag in (view_messages.TO_VIEW_TYPES if name in UNIONS["ToView"] else view_messages.FROM_VIEW_TYPES)


def test_unions(src: str) -> None:
    for name, members in UNIONS.items():
        assert ts_union(src, name) == members
    assert {typing.get_args(view_messages.ToView)[i].__name__ for i in range(3)} == set(UNIONS["ToView"])
    assert {typing.get_args(view_messages.FromView)[i].__name__ for i in range(3)} == set(UNIONS["FromView"])


def test_message_fields(src: str) -> None:
    interfaces = ts_interfaces(src)
    for name, cls in {**MESSAGES, **CARRIED}.items():
        assert name in interfaces, f"messages.ts has no interface {name}"
        hints = typing.get_type_hints(cls)
        fields = interfaces[name]
        assert list(fields) == list(hints), (
            f"{name}: fields {list(fields)} in messages.ts, {list(hints)} in view_messages.py"
        )
        for field, py_type in hints.items():
            want = expected_ts_type(py_type)
            if want is not None:
                assert fields[field] == want, (
                    f"{name}.{field}: {fields[field]!r} in messages.ts, {py_type} in view_messages.py"
                )
            elif typing.get_origin(py_type) is list:
                assert fields[field].endswith("[]"), f"{name}.{field}: {fields[field]!r} is not an array"
            else:
                pytest.fail(f"{name}.{field}: no rule for Python type {py_type}")


def test_builders_make_what_the_interfaces_say() -> None:
    """view_messages.py's constructors build exactly the TypedDict fields (so the TS side's are all)."""
    made = {
        "Lines": view_messages.lines(1, 0, [(1, "x", 1.5)]),
        "BarrierMsg": view_messages.barrier(2, 3),
        "Replay": view_messages.replay(4, 0, []),
    }
    for name, msg in made.items():
        assert list(msg) == list(typing.get_type_hints(MESSAGES[name]))
        assert msg["protocol"] == view_messages.VIEW_PROTOCOL_VERSION
    bundle = view_messages.display_data("display", {"text/html": "<b>x</b>"}, {}, None, False)
    assert list(bundle) == list(typing.get_type_hints(view_messages.DisplayData))


def test_the_chunks_are_what_messages_ts_says(src: str) -> None:
    """Text rides in `lines`/`replay` chunks as [stream, text, at], a bundle as
    [DISPLAY, DisplayData, at]; `at` is a number (seconds since the epoch)."""
    assert typing.get_args(view_messages.Chunk) == (int, str | view_messages.DisplayData, float)
    assert re.search(r"export\s+type\s+Chunk\s*=\s*\[Stream, string, number\];", src)
    assert re.search(r"export\s+type\s+DisplayChunk\s*=\s*\[typeof DISPLAY, DisplayData, number\];", src)
    assert ts_union(src, "Piece") == ("Chunk", "DisplayChunk")
    fields = ts_interfaces(src)
    assert fields["Lines"]["chunks"] == fields["Replay"]["chunks"] == "Piece[]"


def test_the_panels_trait_values_agree(src: str) -> None:
    """The panel (``ProcsPanel`` / ``PanelModel``) has no messages, but its modes, timestamp
    modes and the size from which it shows the merged view first are spelled on both sides."""
    from ipylogfwd.sinks import widgets

    assert ts_string_tuple(src, "PANEL_MODES") == widgets.VIEW_MODES
    assert ts_string_tuple(src, "TIME_MODES") == widgets.TIME_MODES
    assert ts_const(src, "MERGED_AT") == widgets.MERGED_AT
    traits = widgets.ProcsPanel.class_traits(sync=True)
    assert tuple(traits["mode"].values) == widgets.VIEW_MODES
    assert tuple(traits["timestamps"].values) == widgets.TIME_MODES
    assert traits["_model_name"].default_value == "PanelModel" and traits["_view_name"].default_value == "PanelView"


def test_package_json() -> None:
    pkg = json.loads(PACKAGE_JSON.read_text(encoding="utf-8"))
    assert pkg["name"] == view_messages.MODULE_NAME
    assert version_satisfies(pkg["version"], view_messages.MODULE_VERSION), (
        f"package.json version {pkg['version']} does not satisfy "
        f"view_messages.MODULE_VERSION {view_messages.MODULE_VERSION}"
    )
    assert pkg["jupyterlab"]["outputDir"] == "../ipylogfwd/labextension"
    shared = pkg["jupyterlab"]["sharedPackages"]["@jupyter-widgets/base"]
    assert shared == {"bundled": False, "singleton": True}


def parse_version(text: str) -> tuple[int, int, int]:
    m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", text.strip())
    assert m, f"not a plain x.y.z version: {text!r}"
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def version_satisfies(version: str, spec: str) -> bool:
    """npm semver for the forms a widget module version uses: x.y.z, ^x.y.z, ~x.y.z."""
    v = parse_version(version)
    spec = spec.strip()
    if spec.startswith("^"):
        base = parse_version(spec[1:])
        if base[0] > 0:
            upper = (base[0] + 1, 0, 0)
        elif base[1] > 0:
            upper = (0, base[1] + 1, 0)
        else:
            upper = (0, 0, base[2] + 1)
        return base <= v < upper
    if spec.startswith("~"):
        base = parse_version(spec[1:])
        return base <= v < (base[0], base[1] + 1, 0)
    return v == parse_version(spec)


@pytest.mark.parametrize(
    ("version", "spec", "ok"),
    [
        ("0.1.0", "^0.1.0", True),
        ("0.1.7", "^0.1.0", True),
        ("0.2.0", "^0.1.0", False),
        ("0.0.9", "^0.1.0", False),
        ("1.4.0", "^1.2.0", True),
        ("2.0.0", "^1.2.0", False),
        ("0.1.3", "~0.1.0", True),
        ("0.1.0", "0.1.0", True),
        ("0.1.1", "0.1.0", False),
    ],
)
def test_version_satisfies(version: str, spec: str, ok: bool) -> None:
    assert version_satisfies(version, spec) is ok


def test_the_prebuilt_extension_is_installed_and_enabled() -> None:
    import subprocess
    import sys
    from pathlib import Path

    jupyter = Path(sys.executable).with_name("jupyter")
    out = subprocess.run([str(jupyter), "labextension", "list"], capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    line = next((ln for ln in text.splitlines() if "ipylogfwd" in ln), "")
    assert "v0.1.0" in line and "enabled" in line and "OK" in line, text
