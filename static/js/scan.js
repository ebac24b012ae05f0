/* wxsite: the desktop's side of login by scanning — ask the site every two seconds what
 * the phone decided, and continue logged in once it confirmed. */
(function () {
  "use strict";
  var root = document.getElementById("scan");
  if (!root) { return; }
  var stateEl = document.getElementById("scan-state");
  var again = document.getElementById("scan-again");
  var codes = root.querySelectorAll(".qr");
  var words = {
    pending: "打开微信「扫一扫」，扫描上方二维码，并在手机上确认。",
    scanned: "已扫码，请在手机上确认。",
    expired: "二维码已过期，请刷新。",
    cancelled: "已在手机上取消登录。",
    redeemed: "这个二维码已经用过，请刷新。",
    forbidden: "这个二维码属于另一个浏览器，请刷新。",
    unknown: "二维码无效，请刷新。",
    error: "网络不稳定，正在重试…"
  };

  function finish(text) {
    stateEl.textContent = text;
    for (var i = 0; i < codes.length; i++) { codes[i].classList.add("qr-dim"); }
    again.hidden = false;
  }

  function poll() {
    fetch(root.dataset.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (answer) {
        if (answer.state === "done") {
          stateEl.textContent = "已确认，正在登录…";
          window.location.assign(answer.next || "/");
        } else if (answer.state === "pending" || answer.state === "scanned") {
          // scanned: a follow-to-log-in code was scanned; the phone has yet to confirm, and
          // the codes are spent for anyone else: dim them, as WeChat's own desktop does.
          stateEl.textContent = words[answer.state];
          if (answer.state === "scanned") {
            stateEl.classList.add("scan-state-done");
            for (var i = 0; i < codes.length; i++) { codes[i].classList.add("qr-dim"); }
          }
          window.setTimeout(poll, 2000);
        } else {
          finish(words[answer.state] || words.unknown);
        }
      })
      .catch(function () {
        stateEl.textContent = words.error;
        window.setTimeout(poll, 4000);
      });
  }
  window.setTimeout(poll, 1500);
}());
