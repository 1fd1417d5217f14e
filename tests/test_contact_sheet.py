import cv2
import pytest

from handpose.cli import main
from handpose.data.contact_sheet import write_contact_sheet


def test_contact_sheet_grid_from_the_cli(tiny_dataset, tmp_path):
    out = tmp_path / "sheet.png"
    assert main(["contact-sheet", "--dataset", str(tiny_dataset), "--out", str(out), "--n", "6", "--cols", "4"]) == 0
    image = cv2.imread(str(out))
    assert image.shape == (2 * 224, 4 * 224, 3)
    assert image[:224, :224].std() > 5  # a real sample, not a blank tile: a blank's std is 0, a render's tens
    assert image[224:, 2 * 224 :].max() == 0  # the two padding tiles are empty


def test_contact_sheet_errors_leave_no_file(tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="sheet.gif"):
        write_contact_sheet(tiny_dataset, tmp_path / "sheet.gif")
    assert main(["contact-sheet", "--dataset", str(tmp_path / "nope"), "--out", str(tmp_path / "s.png")]) == 2
    assert list(tmp_path.iterdir()) == []
