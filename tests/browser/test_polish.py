"""The polish list (issue 17, item 10), looked at in a phone-size WeChat browser."""

import re

from test_scenarios import open_shop, order_coffee, photo, pick_user, wait_ready

#: Elements whose right edge passes the viewport: what makes a page scroll sideways
#: (or, under overflow-x: hidden, what it cuts off).
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [];
  for (const el of document.querySelectorAll('body *')) {
    const box = el.getBoundingClientRect();
    if (box.width && box.right > width + 1) {
      wide.push(el.tagName + (el.id ? '#' + el.id : '') + '.' + el.className + ' ' + Math.round(box.right));
    }
  }
  return {scroll: document.documentElement.scrollWidth, width, wide};
}"""


def test_emulator_home_does_not_scroll_sideways(page, stack, shot):
    page.goto(stack.emulator.base_url + "/")
    # With a parametric code and a delivery listed too (the longest rows).
    page.fill("#wxemu-new-qrcode input[name=scene]", "a-rather-long-scene-string-" + "x" * 30)
    with page.expect_navigation():
        page.click("#wxemu-new-qrcode button")
    page.fill("#wxemu-send-text input[name=content]", "你好")
    with page.expect_navigation():
        page.click("#wxemu-send-text button")
    found = page.evaluate(OVERFLOW)
    shot(page, "emulator-home")
    assert found["scroll"] <= found["width"], found
    assert found["wide"] == [], found


def no_fragment(page):
    """The address bar after a login: WeChat's #wechat_redirect is cleared."""
    page.wait_for_function("() => location.hash === ''")
    assert "wechat_redirect" not in page.url


def test_upload_counts_asks_and_previews(page, stack, shot, tmp_path):
    page.goto(stack.url("/upload"))
    pick_user(page, "lisi")
    page.wait_for_url(re.compile(r".*/upload(#.*)?$"))
    wait_ready(page)
    no_fragment(page)
    # No empty white strip under 我的照片（0）: the empty gallery is not drawn at all.
    assert page.locator("#gallery").is_hidden()
    assert page.locator("#gallery-empty").is_visible()
    assert "每张不超过 10 MB" in page.inner_text(".hero-desc")

    files = [photo(tmp_path, f"q{i}.jpg", (200, 40 * i, 90)) for i in range(2)]
    page.click("#choose")
    page.set_input_files("#wxemu-file", files)
    page.wait_for_function(
        "() => document.querySelectorAll('#picked img[src^=\"data:\"]').length === 2"
    )
    page.click("#send")
    page.wait_for_function(
        "() => document.getElementById('progress').textContent.indexOf('完成') === 0"
    )
    assert page.inner_text("#progress") == "完成：2 张已保存"
    bar = page.locator("#progress-bar")
    assert bar.is_visible() and bar.evaluate("b => b.value === b.max")
    # New photos can be deleted at once, without a reload.
    assert page.locator("#gallery .grid-item .grid-delete button").count() == 2
    assert page.inner_text("#gallery-count") == "2"

    # The same photo again is 已在相册中, not 已保存.
    page.click("#choose")
    page.set_input_files("#wxemu-file", files[:1])
    page.wait_for_selector("#send-area:not([hidden])")
    page.click("#send")
    # (the words of the first batch are still there until this one's begin)
    page.wait_for_function(
        "() => document.getElementById('progress').textContent === '完成：1 张已在相册中'"
    )
    assert page.inner_text("#gallery-count") == "2"
    shot(page, "upload-done")

    # A tap previews in place (WeChat's viewer), and a tap takes you back.
    page.click("#gallery .grid-item:first-child img")
    page.wait_for_selector("#wxemu-preview")
    assert page.url.endswith("/upload")
    preview = [e for e in stack.emu_get("/_emu/events") if e["api"] == "previewImage"][-1]
    assert preview["ok"] and len(preview["args"]["urls"]) == 2
    assert all(u.startswith(stack.base_url + "/uploads/") for u in preview["args"]["urls"])
    page.click("#wxemu-preview")
    page.wait_for_selector("#wxemu-preview", state="detached")

    # Delete asks first, in the page; 取消 keeps the photo.
    page.click("#gallery .grid-item:first-child .grid-delete button")
    page.wait_for_selector("#confirm-dialog:not([hidden])")
    assert "删除这张照片" in page.inner_text("#confirm-text")
    shot(page, "upload-confirm-delete")
    page.click("#confirm-cancel")
    assert page.locator("#confirm-dialog").is_hidden()
    assert page.locator("#gallery .grid-item").count() == 2
    page.click("#gallery .grid-item:first-child .grid-delete button")
    with page.expect_navigation():
        page.click("#confirm-ok")
    assert "已删除" in page.inner_text("main")
    assert page.locator("#gallery .grid-item").count() == 1
    assert page.problems == []


def test_voice_timer_and_one_primary_button(page, stack, shot):
    page.goto(stack.url("/voice"))
    pick_user(page, "lisi")
    page.wait_for_url(re.compile(r".*/voice(#.*)?$"))
    wait_ready(page)
    assert page.locator("#rec-timer").is_hidden()
    page.click("#rec-start")
    page.wait_for_selector("#rec-stop:not([hidden])")
    assert re.fullmatch(r"0:0\d / 1:00", page.inner_text("#rec-timer"))
    page.wait_for_function(
        "() => document.getElementById('rec-timer').textContent.indexOf('0:01') === 0"
    )
    page.click("#rec-stop")
    page.wait_for_selector("#rec-play:not([hidden])")  # stopRecord answers asynchronously
    assert re.fullmatch(r"0:0\d", page.inner_text("#rec-timer"))
    # After a take: 上传 is the one primary button; 重新录音 and 试听 beside it.
    assert page.inner_text("#rec-start") == "重新录音"
    primaries = page.locator(".btn-area .btn-primary:visible")
    assert primaries.count() == 1 and primaries.inner_text() == "上传"
    assert page.locator("#rec-play").is_visible()
    shot(page, "voice-take")

    # 处理中 refreshes itself: the page's own fetch of /voice brings the note's player.
    def ready_note(route):
        html = route.fetch().text()
        html = re.sub(
            r'<div class="links"><span class="badge voice-processing".*?</div>',
            '<audio controls preload="none"></audio>',
            html,
            flags=re.S,
        )
        route.fulfill(body=html, content_type="text/html; charset=utf-8")

    page.route(
        re.compile(r".*/voice$"),
        lambda route: (
            ready_note(route) if route.request.resource_type == "fetch" else route.continue_()
        ),
    )
    page.click("#rec-upload")
    page.wait_for_selector(".voice-item")
    if page.locator(".voice-item [data-processing]").count():
        page.wait_for_selector(".voice-item audio", timeout=10000)
        assert page.locator(".voice-item [data-processing]").count() == 0
    for links in page.locator(".voice-item .links").all():
        assert "·" not in links.inner_text()
    assert page.problems == []


def test_me_folds_identifiers_and_unbind_asks_first(page, stack, shot):
    stack.site.flask("account", "create", "bob", input="correct horse battery\n")
    page.goto(stack.url("/me"))
    pick_user(page, "zhouba")
    page.wait_for_url(re.compile(r".*/me(#.*)?$"))
    no_fragment(page)
    assert "未关注" in page.inner_text(".profile") or "已关注" in page.inner_text(".profile")
    details = page.locator("details#tech-info")
    assert details.get_attribute("open") is None
    assert page.locator("#openid").is_hidden()
    page.click("#tech-info summary")
    assert page.locator("#openid").is_visible() and page.inner_text("#openid")
    page.click("#tech-info summary")

    page.click("text=绑定已有账号")
    page.fill("#username", "bob")
    page.fill("#password", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/me(#.*)?$"))
    page.click("text=解除绑定")
    page.wait_for_selector("#confirm-dialog:not([hidden])")
    assert "bob" in page.inner_text("#confirm-text")
    shot(page, "me-confirm-unbind")
    page.click("#confirm-cancel")
    assert page.inner_text("#bound-account") == "bob"
    page.click("text=解除绑定")
    with page.expect_navigation():
        page.click("#confirm-ok")
    assert page.locator("#bound-account").count() == 0

    # Home, signed in: 我的资料 once (the card), not again in the list.
    page.goto(stack.url("/"))
    assert page.locator("main a[href$='/me']").count() == 1
    shot(page, "home-signed-in")
    assert page.problems == []


def test_paying_ends_on_a_success_screen(page, stack, shot):
    open_shop(page, stack, "sunqi")
    order_coffee(page)
    # The pay button and 我的订单 share one button area: no empty gap between them.
    gap = page.evaluate(
        "() => document.querySelector('a[href$=\"/orders\"]').getBoundingClientRect().top"
        " - document.getElementById('pay').getBoundingClientRect().bottom"
    )
    assert gap <= 16, gap
    shot(page, "order-unpaid")
    # WeChat's sheet fails ("chooseWXPay:fail"): the buyer reads what to do, not the errMsg.
    page.route("**/_emu/pay/confirm", lambda route: route.fulfill(json={"ok": False}))
    page.click("#pay")
    page.wait_for_function("() => document.getElementById('pay').disabled === false")
    words = page.inner_text("#pay-status")
    assert "chooseWXPay" not in words and "付款没有完成" in words and "再点一次" in words
    shot(page, "order-pay-failed")
    page.unroute("**/_emu/pay/confirm")
    page.click("#pay")
    page.wait_for_selector("#pay-success")
    assert page.inner_text("#pay-success") == "支付成功"
    assert page.get_attribute("#order-state", "data-state") == "SUCCESS"
    assert page.problems == []


def test_the_qr_card_centres_its_code(browser, stack, shot):
    """/auth/scan (and the open-in-WeChat page, same card): the code in the card's middle,
    the card in the page's."""
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, ignore_https_errors=True)
    try:
        page = ctx.new_page()
        page.goto(stack.url("/auth/scan?next=/"))
        card = page.locator(".qr").bounding_box()
        code = page.locator(".qr svg").bounding_box()
        width = page.evaluate("document.documentElement.clientWidth")
        assert abs((card["x"] + card["width"] / 2) - width / 2) <= 1
        assert abs((code["x"] + code["width"] / 2) - (card["x"] + card["width"] / 2)) <= 1
        assert abs((code["y"] + code["height"] / 2) - (card["y"] + card["height"] / 2)) <= 1
        if page.locator("#copy-link").count():  # once the view passes phone_url
            assert page.inner_text("#copy-link") == "复制链接"
        shot(page, "scan-phone-size")
    finally:
        ctx.close()
