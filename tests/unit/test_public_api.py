import enduro


def test_public_surface_is_exported_and_documented() -> None:
    assert sorted(enduro.__all__) == sorted(set(enduro.__all__))
    for name in enduro.__all__:
        obj = getattr(enduro, name)
        if callable(obj) and not name.startswith("__"):
            assert obj.__doc__, f"{name} has no docstring"


def test_errors_map_to_documented_exit_codes() -> None:
    assert enduro.PlanError("x").exit_code == 2
    assert enduro.RuleSyntaxError("x").exit_code == 2
    assert enduro.RunError("x").exit_code == 3
    assert enduro.TargetUnreachable("x").exit_code == 3
    assert enduro.Interrupted("x").exit_code == 130
    assert issubclass(enduro.PlanError, enduro.EnduroError)
    assert issubclass(enduro.RunError, enduro.EnduroError)
    assert not issubclass(enduro.PlanError, enduro.RunError)


def test_import_enduro_is_light_and_the_surface_loads_on_use() -> None:
    import subprocess
    import sys
    code = ("import sys, enduro\n"
            "heavy = [m for m in ('rich', 'pydantic', 'numpy', 'plotly', 'enduro.run.run')"
            " if m in sys.modules]\n"
            "print(heavy, enduro.Run.__name__, enduro.load_plan.__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.split() == ["[]", "Run", "load_plan"], out.stdout + out.stderr


def test_ctrl_c_while_the_command_is_still_importing_is_exit_130_without_traceback() -> None:
    # Before: a Ctrl-C in the first half second of `enduro run` printed a KeyboardInterrupt
    # traceback. The import of rich stands for any moment of the start-up.
    import subprocess
    import sys
    code = ("import sys\n"
            "class Interrupt:\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name == 'rich':\n"
            "            raise KeyboardInterrupt\n"
            "sys.meta_path.insert(0, Interrupt())\n"
            "sys.argv = ['enduro', 'validate', 'plan.yaml']\n"
            "from enduro.entry import main\n"
            "main()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "error: interrupted\n"


def test_sigterm_while_the_command_is_still_importing_is_exit_130_without_traceback() -> None:
    import subprocess
    import sys
    code = ("import os, signal, sys\n"
            "class Terminate:\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name == 'rich':\n"
            "            os.kill(os.getpid(), signal.SIGTERM)\n"
            "sys.meta_path.insert(0, Terminate())\n"
            "sys.argv = ['enduro', 'validate', 'plan.yaml']\n"
            "from enduro.entry import main\n"
            "main()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "error: interrupted\n"


def test_the_pytest_plugin_loads_nothing_heavy_until_a_fixture_is_used() -> None:
    import subprocess
    import sys
    from importlib.metadata import entry_points
    (plugin,) = [e for e in entry_points(group="pytest11") if e.name == "enduro"]
    code = (f"import sys, {plugin.value}\n"
            "print([m for m in sys.modules if m.startswith(('enduro.', 'pydantic', 'numpy',"
            " 'rich')) and m not in ('enduro.pytest_plugin', 'enduro.base',"
            " 'enduro.base.errors')])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
