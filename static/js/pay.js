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
        fail: function (res) { button.disabled = false; status.textContent = "支付失败：" + res.errMsg; }
      });
    });
  });
})();
