import json
import string

from hypothesis import given, settings
from hypothesis import strategies as hs

from velibcast.redact import redact_text

# What an AWS access key id and a secret access key (or a session token) are made of: base64's
# alphabet, "/" and "+" included, and its "=" padding.
KEY_ID = hs.text(string.ascii_uppercase + string.digits, min_size=16, max_size=32)
SECRET = hs.text(string.ascii_letters + string.digits + "+/=", min_size=1, max_size=64)


def test_userinfo_is_redacted_and_nothing_else():
    assert redact_text("http://KEY:SECRET@host:9000/x") == "http://***@host:9000/x"
    assert redact_text('{"a": "https://u:p@h", "b": "s3://bucket/key@v"}') == '{"a": "https://***@h", "b": "s3://bucket/key@v"}'
    assert redact_text("mailto:a@b and user@example.org") == "mailto:a@b and user@example.org"


@settings(max_examples=300)
@given(key=KEY_ID, secret=SECRET)
def test_every_secret_an_aws_key_may_hold_is_redacted_from_a_url(key, secret):
    url = f"http://{key}:{secret}@minio.internal:9000/bucket"
    assert redact_text(url) == "http://***@minio.internal:9000/bucket"
    assert redact_text(json.dumps({"endpoint_url": url, "root": "s3://bucket/key@v"})) == json.dumps(
        {"endpoint_url": "http://***@minio.internal:9000/bucket", "root": "s3://bucket/key@v"})
    # botocore quotes the endpoint it refuses
    assert redact_text(f"GET s3://b/k failed: Custom endpoint `{url}` was not a valid URI") == (
        "GET s3://b/k failed: Custom endpoint `http://***@minio.internal:9000/bucket` was not a valid URI")
