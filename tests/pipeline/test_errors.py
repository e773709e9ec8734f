import pickle

import pytest

from pipeline.errors import InkRemovalError, RunCancelled, SlideReadError, UnsupportedSlideError


def test_slide_read_error_is_os_error():
    error = SlideReadError("/data/a.svs", "tile 3 cannot be decoded")
    assert isinstance(error, InkRemovalError)
    assert isinstance(error, OSError)
    assert error.path == "/data/a.svs"
    assert error.reason == "tile 3 cannot be decoded"
    assert str(error) == "cannot read slide 'a.svs': tile 3 cannot be decoded"


def test_unsupported_is_read_and_value_error():
    error = UnsupportedSlideError("b.tif", "16-bit")
    assert isinstance(error, SlideReadError)
    assert isinstance(error, ValueError)


@pytest.mark.parametrize("error_type", [SlideReadError, UnsupportedSlideError])
def test_slide_errors_survive_pickling(error_type):
    restored = pickle.loads(pickle.dumps(error_type("/x/c.svs", "bad")))
    assert type(restored) is error_type
    assert (restored.path, restored.reason) == ("/x/c.svs", "bad")


def test_run_cancelled_is_pipeline_error():
    assert issubclass(RunCancelled, InkRemovalError)


def test_package_logger_has_null_handler():
    import logging

    import pipeline  # noqa: F401

    handlers = logging.getLogger("pipeline").handlers
    assert any(isinstance(handler, logging.NullHandler) for handler in handlers)
