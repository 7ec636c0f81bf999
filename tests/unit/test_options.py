import pytest

from raylite import _options


@pytest.mark.parametrize("kind,key,value", [
    ("task", "num_cpus", -1), ("task", "num_cpus", "2"), ("task", "num_gpus", True),
    ("task", "num_returns", -1), ("task", "num_returns", "lazy"),
    ("task", "_generator_backpressure_num_objects", 0), ("task", "max_retries", -2),
    ("task", "retry_exceptions", [1]), ("task", "resources", {"CPU": 1}),
    ("task", "resources", {"x": -1}), ("task", "runtime_env", {"pip": 3}),
    ("task", "scheduling_strategy", "NODE"), ("actor", "lifetime", "forever"),
    ("actor", "max_concurrency", 0), ("actor", "get_if_exists", 1),
    ("actor", "concurrency_groups", {"io": 0}), ("method", "num_returns", 1.5),
])
def test_bad_values_are_rejected(kind, key, value):
    with pytest.raises(ValueError, match=key.lstrip("_").split("_")[0]):
        _options.validate(kind, {key: value})


@pytest.mark.parametrize("kind,key", [("task", "lifetime"), ("actor", "num_returns"),
                                      ("method", "num_cpus"), ("task", "bogus")])
def test_keys_valid_elsewhere_are_rejected_with_the_valid_list(kind, key):
    with pytest.raises(ValueError, match="Valid options: "):
        _options.validate(kind, {key: 1})


def test_named_requirements():
    with pytest.raises(ValueError, match="name"):
        _options.validate("actor", {"get_if_exists": True})
    with pytest.raises(ValueError, match="named"):
        _options.validate("actor", {"lifetime": "detached"})


def test_merge_and_demand():
    base = _options.TaskOptions()
    assert base.demand() == {"CPU": 1}
    opts = _options.merge(base, "task", {"num_cpus": 0, "num_gpus": 2, "resources": {"x": 1},
                                         "accelerator_type": "T4"})
    assert opts.demand() == {"GPU": 2, "x": 1, "accelerator_type:T4": 0.001}
    assert base.num_gpus == 0  # frozen: merge made a copy
    actor = _options.ActorOptions()
    assert actor.demand() == {} and actor.placement_demand() == {"CPU": 1}
    assert _options.validate("task", {"retry_exceptions": [KeyError]}) == \
        {"retry_exceptions": (KeyError,)}
    assert _options.validate("actor", {"lifetime": "non_detached"}) == {"lifetime": None}


def test_generator_options():
    assert _options.validate("task", {"num_returns": "streaming"}) == {"num_returns": "streaming"}
    assert _options.validate("method", {"num_returns": "dynamic"}) == {"num_returns": "dynamic"}
    opts = _options.merge(_options.TaskOptions(), "task", {"_generator_backpressure_num_objects": 4})
    assert opts.generator_backpressure == 4
