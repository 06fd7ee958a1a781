"""`ExportOptions` / `export_checkpoint` validate every option themselves, with the command line's messages."""
import pytest

from attrnet.core.errors import InputError
from attrnet.export.pipeline import ExportOptions, export_checkpoint
from attrnet.export.trt_engine import BatchProfile


@pytest.mark.parametrize("options,message", [
    ({"mode": "fastest"}, "unknown --fold-mode 'fastest' (measure, flops, grouped or dense)"),
    ({"mix": "blend"}, "unknown --mix 'blend' (flops, fold or keep)"),
    ({"instance": "tpu"}, "unknown --instance 'tpu' (gpu or cpu)"),
    ({"parity_images": 0}, "--parity-images and --workspace must be positive"),
    ({"workspace": 0}, "--parity-images and --workspace must be positive"),
    ({"img_size": (4, 4)}, "--img-size out of range (8..4096): '4x4'"),
    ({"format": "tflite"}, "unknown --format 'tflite'"),
])
def test_bad_options_are_refused_before_the_checkpoint_is_read(tmp_path, options, message):
    missing = tmp_path / "never-read.safetensors"  # validation comes first: the missing file is not reported
    with pytest.raises(InputError) as err:
        export_checkpoint(missing, ExportOptions(**options))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.parametrize("text", ["8:4:16", "0", "a:b:c"])
def test_batch_text_is_parsed_and_checked_like_the_command_line(text):
    with pytest.raises(InputError, match="--batch"):
        ExportOptions(batch=text)


def test_batch_and_img_size_take_the_command_line_text():
    opts = ExportOptions(batch="1:8:32", img_size="40x32")
    assert opts.batch == BatchProfile(1, 8, 32) and opts.img_size == (40, 32)
    assert ExportOptions(batch=8).batch == BatchProfile(1, 8, 8)
    assert ExportOptions().batch == BatchProfile(1, 16, 64)


def test_a_batch_profile_built_by_hand_is_checked_too():
    with pytest.raises(InputError, match=r"--batch needs 1 <= MIN <= OPT <= MAX, got '4:2:8'"):
        BatchProfile(4, 2, 8)
