"""The memory stream assembled: samples placed by their first index (a lost chunk leaves a gap of
None, never a shifted column), a restart drops the folded batch-steps' samples, CUDA columns
that appear only once CUDA is used line up."""

from perfdoctor.stream import assemble


def test_samples_restart_gaps_and_late_cuda_columns():
    records = [
        {"meta": {"limit_bytes": 100, "limit_source": "ram"}},
        {"samples": {"first": 0, "step": [1, 2], "t_ns": [1, 2], "rss": [10, 11], "children_rss": [0, 0], "children": [0, 0]}},
        {"restart": {}},
        {"samples": {"first": 0, "step": [1, 2], "t_ns": [5, 6], "rss": [20, 21], "children_rss": [0, 0], "children": [0, 0]}},
        # the chunk with index 2-3 was lost; CUDA came into use meanwhile
        {"cuda": {"device": 0, "total_bytes": 1000}},
        {"samples": {"first": 4, "step": [5], "t_ns": [9], "rss": [24], "children_rss": [0], "children": [0],
                     "cuda_allocated": [7], "cuda_reserved": [8]}},
        {"oom": {"kind": "cuda", "step": 5}},
        {"cost": {"ns": 1234, "samples": 5}},
    ]
    memory = assemble.memory(records)
    samples = memory["samples"]
    assert samples["step"] == [1, 2, None, None, 5] and samples["rss"] == [20, 21, None, None, 24]
    assert samples["cuda_allocated"] == [None, None, None, None, 7] and samples["cuda_peak_allocated"] == [None] * 5
    assert memory["cuda"]["total_bytes"] == 1000 and memory["oom"]["step"] == 5 and memory["cost"]["ns"] == 1234
    assert memory["meta"]["limit_bytes"] == 100


def test_an_empty_stream():
    memory = assemble.memory([])
    assert memory["samples"]["step"] == [] and memory["oom"] is None
