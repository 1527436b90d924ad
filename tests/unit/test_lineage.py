"""A version's lineage survives the trip through MLflow tags, field by field."""

from registry.lineage import Lineage


def test_lineage_round_trips_through_tags():
    made = Lineage(
        dataset_hash="d" * 64, prompt="arith-qa/3", base_model="/models/tiny", method="lora", stages="sft+dpo"
    )
    tags = made.to_tags()
    assert tags["lineage.prompt"] == "arith-qa/3" and "lineage.git_commit" not in tags  # unset fields write no tag
    assert Lineage.from_tags(tags | {"gate.decision": "promote", "lineage.retired_key": "x"}) == made


def test_an_untagged_version_reads_as_empty_lineage():
    assert Lineage.from_tags({}).prompt == ""
