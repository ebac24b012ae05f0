"""What a person does in WeChat's browser, page by page, with the fake JS-SDK checking
every signature — straight to gunicorn (4 workers) and again behind nginx."""

import io
import re

from PIL import Image


def pick_user(page, user="zhangsan", action="allow"):
    """Answer the emulator's authorization page like a person would."""
    page.wait_for_selector("#wxemu-authorize")
    page.check(f'input[name="user"][value="{user}"]')
    page.click(f"#wxemu-{action}")


def wait_ready(page):
    page.wait_for_function(
        "() => window.wxsite && (window.wxsite.state.ready || window.wxsite.state.error)"
    )
    assert page.evaluate("window.wxsite.state.error") is None, page.inner_text("#wx-banner")
    assert page.evaluate("window.__wxemu.ready") is True


def open_shop(page, stack, user):
    """Open /pay/ logged in as ``user`` (through the emulator's authorization page)."""
    page.goto(stack.url("/pay/"))
    pick_user(page, user)
    page.wait_for_url(re.compile(r".*/pay/(#.*)?$"))


def order_coffee(page):
    """From the shop, order a coffee; wait on its order page until the JS-SDK is ready."""
    page.click('button[data-product="coffee"]')
    page.wait_for_url(re.compile(r".*/pay/orders/WX\w+"))
    wait_ready(page)


def photo(tmp_path, name, color, fmt="JPEG"):
    path = tmp_path / name
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), color).save(buffer, fmt)
    path.write_bytes(buffer.getvalue())
    return str(path)


def test_a_day_in_wechat(page, stack, shot, tmp_path):
    stack.site.flask("account", "create", "alice", input="correct horse battery\n")
    emu_events = lambda: stack.emu_get("/_emu/events")  # noqa: E731

    # Cold visit to a page that only needs to know who you are: silent snsapi_base.
    page.goto(stack.url("/share"))
    shot(page, "01-authorize")
    pick_user(page)
    page.wait_for_url(re.compile(r".*/share(#.*)?$"))
    wait_ready(page)
    session = {c["name"]: c for c in page.context.cookies()}["wxsite_session"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    assert session["secure"] == stack.base_url.startswith("https://")  # https behind the tunnel
    page.wait_for_selector("#share-status.toast")
    shot(page, "02-share")
    shares = [
        e
        for e in emu_events()
        if e["api"] in ("updateAppMessageShareData", "updateTimelineShareData")
    ]
    assert {e["api"] for e in shares} == {"updateAppMessageShareData", "updateTimelineShareData"}
    assert all(e["ok"] and "/?ref=" in e["args"]["link"] for e in shares)
    assert all(e["args"]["link"].startswith(stack.base_url) for e in shares)

    # The profile needs consent: snsapi_userinfo.
    page.goto(stack.url("/me"))
    page.wait_for_selector("#wxemu-authorize")
    assert "申请获取你的昵称、头像" in page.content()
    page.click("#wxemu-allow")
    page.wait_for_url(re.compile(r".*/me(#.*)?$"))
    assert "张三" in page.inner_text(".profile-name")
    assert "已关注公众号" in page.content()

    # Bind the existing site account.
    page.click("text=绑定已有账号")
    page.fill("#username", "alice")
    page.fill("#password", "wrong password")
    page.click("button[type=submit]")
    assert "用户名或密码错误" in page.inner_text(".form-error")
    shot(page, "03-bind-error")
    page.fill("#password", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/me(#.*)?$"))
    assert page.inner_text("#bound-account") == "alice"
    shot(page, "04-me")

    # Three photos through the fake chooser, uploaded one at a time.
    page.goto(stack.url("/upload"))
    wait_ready(page)
    shot(page, "05-upload-empty")
    page.click("#choose")
    files = [photo(tmp_path, f"p{i}.jpg", (40 * i, 160, 90)) for i in range(3)]
    page.set_input_files("#wxemu-file", files)
    page.wait_for_function(
        "() => document.querySelectorAll('#picked img[src^=\"data:\"]').length === 3"
    )
    page.click("#send")
    page.wait_for_function(
        "() => document.getElementById('progress').textContent.indexOf('完成') === 0"
    )
    assert page.inner_text("#progress") == "完成：3 张已保存"
    assert page.locator("#gallery img").count() == 3
    page.reload()
    wait_ready(page)
    assert page.locator("#gallery img").count() == 3
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('#gallery img')).every(i => i.complete && i.naturalWidth > 0)"
    )
    shot(page, "06-gallery")
    uploads = [e for e in emu_events() if e["api"] == "uploadImage"]
    assert len(uploads) == 3 and all(e["ok"] for e in uploads)

    # A voice note.
    page.goto(stack.url("/voice"))
    wait_ready(page)
    page.click("#rec-start")
    page.wait_for_selector("#rec-stop:not([hidden])")
    shot(page, "07-recording")
    page.wait_for_timeout(1200)
    page.click("#rec-stop")
    page.click("#rec-play")
    page.click("#rec-upload")
    page.wait_for_selector(".voice-item")
    assert page.locator(".voice-item").count() == 1
    shot(page, "08-voice")

    # Log out: a CSRF-protected POST.
    page.goto(stack.url("/me"))
    page.click("text=退出登录")
    page.wait_for_url(stack.url("/"))
    assert "已退出登录" in page.content()
    assert page.problems == []


def test_misconfigured_proxy_shows_the_signature_banner(browser, tmp_path):
    """nginx that does not forward the Host (and a site trusting no proxy) signs the
    upstream URL, not the one in the address bar: the person sees what to fix."""
    import os

    from support import ARTIFACTS, WECHAT_UA
    from stack import EmulatorProcess, Gunicorn, Nginx

    emulator = EmulatorProcess()
    site = Gunicorn(str(tmp_path), emulator.base_url, workers=1)
    proxy = Nginx(str(tmp_path), site.port, forward=False)
    ctx = browser.new_context(
        user_agent=WECHAT_UA,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
    )
    try:
        page = ctx.new_page()
        page.goto(proxy.base_url + "/share")
        pick_user(page, "lisi")  # the callback itself already lands on the upstream's address
        page.wait_for_selector("#wxemu-authorize", state="detached")
        page.goto(proxy.base_url + "/share")
        page.wait_for_selector("#wx-banner:not([hidden])")
        assert "签名无效" in page.inner_text("#wx-banner")
        assert page.evaluate("window.__wxemu.error.errMsg") == "config:invalid signature"
        assert page.inner_text("#share-status") == "微信功能暂不可用"
        os.makedirs(ARTIFACTS, exist_ok=True)
        page.screenshot(
            path=os.path.join(ARTIFACTS, "misconfigured-invalid-signature.png"), full_page=True
        )
    finally:
        ctx.close()
        proxy.stop()
        site.stop()
        emulator.stop()


def test_refusing_consent_shows_the_friendly_page(page, stack, shot):
    page.goto(stack.url("/me"))
    pick_user(page, "wangwu", action="deny")
    page.wait_for_selector(".msg-title")
    assert page.inner_text(".msg-title") == "你已取消授权"
    assert page.locator("text=重试").count() == 1
    shot(page, "10-refused")
    assert page.problems == []


def test_buy_a_coffee(page, stack, shot):
    open_shop(page, stack, "zhaoliu")
    shot(page, "11-shop")
    order_coffee(page)
    assert page.get_attribute("#order-state", "data-state") == "NOTPAY"
    page.click("#pay")
    page.wait_for_function(
        "() => document.getElementById('order-state').dataset.state === 'SUCCESS'"
    )
    shot(page, "12-paid")
    page.goto(stack.url("/orders"))
    assert "已支付" in page.inner_text("main")
    assert page.problems == []
