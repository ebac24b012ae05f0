"""The home page in a phone-size WeChat browser, direct and through nginx."""


def test_home_page_renders_without_errors(page, stack, shot):
    response = page.goto(stack.url("/"))
    assert response.status == 200
    assert page.locator("h1.topbar-title").inner_text()
    assert "模拟器模式" in page.content()
    shot(page, "home")
    assert page.problems == []
