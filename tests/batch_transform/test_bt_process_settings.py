"""The model server's entry point takes the allocator setting the CLI takes, before the model loads."""

import pytest

from velibcast.batch_transform import server


def test_the_model_server_entry_point_sets_the_allocator_before_loading_the_model(monkeypatch, tmp_path):
    applied = []
    monkeypatch.setattr(server.process_settings, "for_model_server", lambda: applied.append(True))
    with pytest.raises(Exception, match="inference.py"):  # an empty folder: no model to load
        server.main(["serve", "--model-dir", str(tmp_path)])
    assert applied == [True]
