from velibcast.redact import redact_text


def test_userinfo_is_redacted_and_nothing_else():
    assert redact_text("http://KEY:SECRET@host:9000/x") == "http://***@host:9000/x"
    assert redact_text('{"a": "https://u:p@h", "b": "s3://bucket/key@v"}') == '{"a": "https://***@h", "b": "s3://bucket/key@v"}'
    assert redact_text("mailto:a@b and user@example.org") == "mailto:a@b and user@example.org"
