"""The exercise registry: a student's function runs where the framework calls its own, and only while registered."""

import numpy as np
import pytest

import tinytorch as tt
from tinytorch.core import exercises, networks
from tinytorch.core.dataloader import batch_slices


def test_a_registered_function_runs_inside_the_framework_and_is_counted():
    seen = []

    def my_batches(num_samples, batch_size, drop_last=False):
        seen.append((num_samples, batch_size))
        return [slice(i, min(i + batch_size, num_samples)) for i in range(0, num_samples, batch_size)][::-1]

    loader = tt.DataLoader(np.arange(5.0), np.arange(5), batch_size=2)
    with exercises.register({batch_slices: my_batches}, origin="test") as registration:
        batches = [labels.tolist() for _, labels in loader]
        assert exercises.calls()[exercises.key_of(batch_slices)] == len(seen) >= 1
        assert registration.keys == ["tinytorch.core.dataloader.batch_slices"]
    assert batches == [[4], [2, 3], [0, 1]]  # the DataLoader used the student's (reversed) order
    assert [labels.tolist() for _, labels in loader] == [[0, 1], [2, 3], [4]]  # and the framework's again after
    assert exercises.substitutes() == {}


def test_registrations_nest_and_restore_what_ran_before():
    first = exercises.register({networks.mlp_parameter_count: lambda *a: 1}, origin="first")
    second = exercises.register({networks.mlp_parameter_count: lambda *a: 2}, origin="second")
    assert networks.mlp_parameter_count(4, [8], 2) == 2
    second.close()
    assert networks.mlp_parameter_count(4, [8], 2) == 1
    second.close()  # closing twice changes nothing
    assert networks.mlp_parameter_count(4, [8], 2) == 1
    first.close()
    assert networks.mlp_parameter_count(4, [8], 2) == 58


def test_a_substitute_may_wrap_the_framework_function_of_its_own_name():
    def doubled(*args):
        return 2 * networks.mlp_parameter_count(*args)  # calls the framework's, not itself

    with exercises.register({networks.mlp_parameter_count: doubled}, origin="test"):
        assert networks.mlp_parameter_count(4, [8], 2) == 116


def test_the_framework_function_cannot_stand_in_for_itself():
    with pytest.raises(ValueError, match="the framework's own function"):
        exercises.register({networks.create_mlp: networks.create_mlp}, origin="test")
    with pytest.raises(ValueError, match="the framework's own function"):
        exercises.register({networks.create_mlp: networks.create_mlp.__wrapped__}, origin="test")
    with pytest.raises(TypeError, match="not callable"):
        exercises.register({networks.create_mlp: 3}, origin="test")


def test_exercises_the_framework_does_not_route_are_reachable_by_name():
    from tinytorch.core import tensor

    assert exercises.implementation(tensor.broadcast_shape) is tensor.broadcast_shape
    with exercises.register({tensor.broadcast_shape: lambda a, b: "mine"}, origin="test"):
        assert exercises.implementation(tensor.broadcast_shape)((1,), (2,)) == "mine"
        assert exercises.calls()["tinytorch.core.tensor.broadcast_shape"] == 1  # called by name, and counted
        assert "does not route it" in exercises.describe()["tinytorch.core.tensor.broadcast_shape"]
    assert exercises.implementation(tensor.broadcast_shape) is tensor.broadcast_shape
    with pytest.raises(LookupError, match="no exercise 'tinytorch.nowhere.f'"):
        exercises.implementation("tinytorch.nowhere.f")


def test_every_lesson_exercise_keeps_its_signature_and_docstring():
    import inspect

    from tinytorch import lesson as runner

    for lesson in runner.find_lessons():
        module = __import__(lesson.module, fromlist=["_"])
        for name in lesson.exercises:
            function = getattr(module, name)
            original = getattr(function, "__wrapped__", function)
            assert inspect.signature(function) == inspect.signature(original)
            assert function.__doc__ == original.__doc__ and function.__name__ == name
