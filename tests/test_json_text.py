"""JSON answers carry Chinese as text, not \\u escapes (issue 17 item 4)."""


def test_json_errors_are_readable_chinese(client):
    answer = client.get("/jssdk/config", query_string={"url": "https://evil.example/x"})
    assert answer.status_code == 400
    assert "只能为本站页面签名" in answer.get_data(as_text=True)
    assert "\\u" not in answer.get_data(as_text=True)
