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
