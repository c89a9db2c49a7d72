"""Published reference figures: the shipped file holds the cited numbers as fractions, each with its citation, and they
appear on the leaderboard, marked, only when asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from medico.leaderboard import Entry, LeaderboardError, LeaderboardStore
from medico.leaderboard.published import load_published, reported_csv_path
from medico.leaderboard.ranking import comparison_group
from medico.leaderboard.view import entries_for_task, leaderboard_rows

SHIPPED = Path(__file__).resolve().parents[1] / "baselines" / "reported.csv"


def _by_model() -> dict[str, Entry]:
    return {entry.model: entry for entry in load_published(SHIPPED)}


def test_every_published_row_is_marked_cited_and_in_fractions():
    entries = load_published(SHIPPED)
    assert len(entries) == 5
    for entry in entries:
        assert entry.source == "published"
        assert entry.citation.strip()
        for value in (entry.dice, entry.iou, entry.precision, entry.recall, entry.f2, entry.accuracy):
            assert value is None or 0 <= value <= 1


def test_the_source_papers_table_1_figures():
    rows = _by_model()
    pranet, attunet = rows["PraNet"], rows["AttUNet (brain-MRI U-Net + attention)"]
    assert (pranet.dice, pranet.iou, pranet.fps) == (0.8988, 0.840, 50.0)
    assert (attunet.dice, attunet.iou, attunet.fps) == (0.728, 0.6437, 116.79)
    assert "Fine-tuning for Polyp Segmentation with Attention" in attunet.citation
    assert "Table 1" in pranet.citation and "Table 1" in attunet.citation


def test_rows_of_another_protocol_are_never_ranked_with_the_official_880_120_split():
    rows = _by_model()
    official = comparison_group(rows["HarDNet-MSEG"], "segmentation")
    assert comparison_group(rows["DoubleU-Net"], "segmentation") == official
    for other in ("AttUNet (brain-MRI U-Net + attention)", "PraNet"):  # an 80:20 split of its own; 900/100
        assert comparison_group(rows[other], "segmentation") != official


def test_hardnet_mseg_and_doubleunet_on_the_880_120_split_and_the_best_dice_of_medico_2020():
    rows = _by_model()
    hardnet = rows["HarDNet-MSEG"]
    assert (hardnet.dice, hardnet.iou, hardnet.f2, hardnet.precision, hardnet.recall, hardnet.accuracy) == (
        0.904, 0.848, 0.915, 0.907, 0.923, 0.969,
    )
    assert (hardnet.fps, hardnet.fps_device, hardnet.n_images) == (86.7, "NVIDIA GeForce RTX 2080 Ti", 120)
    assert "arXiv:2101.07172" in hardnet.citation
    doubleunet = rows["DoubleU-Net"]
    assert (doubleunet.dice, doubleunet.iou, doubleunet.fps) == (0.813, 0.733, 7.5)
    best = rows["best submission"]
    assert (best.dice, best.iou, best.split) == (0.8607, None, "test")
    assert "Medico Multimedia Task at MediaEval 2020" in best.citation


def test_the_shipped_file_is_found_from_any_workspace_and_a_workspace_copy_wins(workspace):
    assert reported_csv_path().resolve() == SHIPPED
    local = workspace / "baselines" / "reported.csv"
    local.parent.mkdir()
    local.write_text("team,model,dice,citation\nus,ours,0.5,our report\n")
    assert reported_csv_path() == Path("baselines") / "reported.csv"
    assert [(e.team, e.dice) for e in load_published()] == [("us", 0.5)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("team,model,dice,citation\nus,ours,89.88,paper\n", "line 2.*fraction"),
        ("team,model,dice,citation\nus,ours,high,paper\n", "line 2, column dice"),
        ("team,model,dice\nus,ours,0.5\n", "missing: citation"),
        ("team,model,dice,citation,colour\nus,ours,0.5,paper,red\n", "unknown: colour"),
        ("team,model,dice,citation\nus,ours,0.5,\n", "line 2: every published row needs a citation"),
    ],
)
def test_a_malformed_published_file_names_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "reported.csv"
    path.write_text(text)
    with pytest.raises(LeaderboardError, match=message) as caught:
        load_published(path)
    assert str(path) in str(caught.value)


def test_published_rows_join_a_task_only_with_the_figure_it_ranks_by():
    entries = load_published(SHIPPED)
    assert {e.model for e in entries_for_task(entries, "efficiency")} == {
        "PraNet", "AttUNet (brain-MRI U-Net + attention)", "HarDNet-MSEG", "DoubleU-Net",
    }
    assert len(entries_for_task(entries, "segmentation")) == 5


def test_published_figures_never_change_measured_ranks_unless_asked(workspace):
    store = LeaderboardStore()
    store.add(Entry(team="us", model="attunet", iou=0.80, dice=0.88, dataset="kvasir-seg fefb3f19"))
    measured = leaderboard_rows(store, split="val")
    assert [(r.rank, r.entry.team, r.entry.source) for r in measured] == [(1, "us", "measured")]
    mixed = leaderboard_rows(store, split="val", with_published=True)
    assert [r.entry.team for r in mixed if r.entry.source == "published"]
    hardnet = next(r for r in mixed if r.entry.model == "HarDNet-MSEG")
    ours = next(r for r in mixed if r.entry.team == "us")
    assert (hardnet.rank, ours.rank) == (1, 2)  # ranked together: the same data (name and fingerprint)
