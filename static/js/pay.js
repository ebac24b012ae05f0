/* Order page: open WeChat's payment sheet, then wait for WeChat's word (the notification,
 * or a query) rather than trusting the sheet's success callback. */
(function () {
  "use strict";
  var params = JSON.parse(document.getElementById("pay-params").textContent);
  var button = document.getElementById("pay");
  var status = document.getElementById("pay-status");

  function poll(tries) {
    fetch(button.dataset.statusUrl, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        if (data.state === "SUCCESS") { window.location.reload(); return; }
        if (tries > 0) { setTimeout(function () { poll(tries - 1); }, 1000); }
        else { status.textContent = "支付结果确认中，请稍后刷新本页"; }
      }, function () { status.textContent = "网络连接失败，请稍后刷新本页"; });
  }

  /* WeChat's errMsg ("chooseWXPay:fail", "…:fail_…") means nothing to a buyer: say what
   * happened and what to do; the raw message stays in the console for whoever debugs. */
  function failure(errMsg) {
    if (window.console) { console.warn("chooseWXPay", errMsg); }
    var msg = String(errMsg || "");
    if (msg.indexOf("permission") >= 0 || msg.indexOf("not support") >= 0) {
      return "这里无法打开微信支付，请在手机微信中打开本页再付款。";
    }
    return "付款没有完成。请再点一次「微信支付」；如果一直不行，请回到小店重新下单。";
  }

  window.wxsite.ready(function () {
    button.addEventListener("click", function () {
      button.disabled = true;
      status.textContent = "正在打开微信支付…";
      wx.chooseWXPay({
        timestamp: params.timeStamp,
        nonceStr: params.nonceStr,
        package: params.package,
        signType: params.signType,
        paySign: params.paySign,
        success: function () { status.textContent = "支付完成，正在确认…"; poll(10); },
        cancel: function () { button.disabled = false; status.textContent = "已取消支付"; },
        fail: function (res) { button.disabled = false; status.textContent = failure(res && res.errMsg); }
      });
    });
  });
})();
