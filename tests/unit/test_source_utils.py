"""Class and module sources, including the never-import-__main__-twice rule."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stepwire import source_utils
from stepwire.materializers import BuiltInMaterializer


def test_resolve_and_load_round_trip() -> None:
    source = source_utils.resolve_class(BuiltInMaterializer)
    assert source == "stepwire.materializers.builtin_materializer.BuiltInMaterializer"
    assert source_utils.load_source_path_class(source + "@stepwire_0.1.0") is BuiltInMaterializer
    assert source_utils.resolve_class(int) == "builtins.int"


def test_resolve_refuses_classes_defined_in_functions() -> None:
    class Local:
        pass

    with pytest.raises(ValueError, match="not defined at module level"):
        source_utils.resolve_class(Local)


def test_load_errors_name_the_source() -> None:
    with pytest.raises(ImportError, match="Cannot import module 'no_such_module_xyz'"):
        source_utils.load_source_path_class("no_such_module_xyz.Thing")
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        source_utils.load_source_path_class("stepwire.materializers.Nope")
    with pytest.raises(TypeError, match="not a class"):
        source_utils.load_source_path_class("stepwire.source_utils.resolve_class")
    with pytest.raises(ImportError, match="not of the form"):
        source_utils.load_source_path_class("justaname")


SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from stepwire import source_utils

    with open(Path(__file__).with_name("imports.log"), "a") as log:
        log.write(__name__ + "\\n")


    class Thing:
        pass


    if __name__ == "__main__":
        source = source_utils.get_module_source_from_module(sys.modules["__main__"])
        print(source)
        loaded = source_utils.load_source_path_class(source + ".Thing@pin")
        assert loaded is Thing, (loaded, Thing)
        assert source_utils.import_main_module(source) is sys.modules["__main__"]
        assert source_utils.resolve_importable_class(Thing) == source + ".Thing"
        assert source not in sys.modules
    """
)


@pytest.mark.parametrize(
    ("command", "expected"),
    [(["pkg/app.py"], "app"), (["-m", "pkg.app"], "pkg.app"), (["-m", "pkg"], "pkg.__main__")],
)
def test_running_script_is_never_imported_twice(
    tmp_path: Path, command: list[str], expected: str
) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "app.py").write_text(SCRIPT)
    (package / "__main__.py").write_text(SCRIPT)
    proc = subprocess.run(
        [sys.executable, *command], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected
    # The module body ran once, as __main__.
    assert (package / "imports.log").read_text().split() == ["__main__"]


def test_module_source_of_an_imported_module_is_its_name() -> None:
    assert source_utils.get_module_source_from_module(source_utils) == "stepwire.source_utils"
    assert not source_utils.is_main_module_source("stepwire.source_utils")
