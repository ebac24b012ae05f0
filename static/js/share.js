/* /share: hand the page's share data to WeChat for chats and Moments. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("share-data").textContent);
  var status = document.getElementById("share-status");
  /* The open tag: if WeChat cannot render it (old client, tag not granted in wx.config),
   * it fires WeixinOpenTagsError; show the plain explanation instead. */
  var launch = document.getElementById("weapp-launch");
  var fallback = document.getElementById("weapp-fallback");
  function noOpenTag(detail) {
    if (launch) { launch.hidden = true; }
    if (fallback) { fallback.hidden = false; }
    if (detail && detail.errMsg) { fallback.setAttribute("data-err", detail.errMsg); }
  }
  if (launch) {
    document.addEventListener("WeixinOpenTagsError", function (e) { noOpenTag(e.detail); });
    launch.addEventListener("error", function (e) { noOpenTag(e.detail); });
  }
  window.wxsite.ready(function () {
    var done = 0;
    function ok() {
      done += 1;
      if (done === 2) { status.textContent = "已设置好分享内容，点击右上角「···」分享"; status.className = "toast"; }
    }
    function fail(res) {
      status.textContent = "设置分享失败：" + (res && res.errMsg || "未知错误");
      status.className = "toast toast-error";
    }
    wx.updateAppMessageShareData({ title: data.title, desc: data.desc, link: data.link, imgUrl: data.imgUrl, success: ok, fail: fail });
    wx.updateTimelineShareData({ title: data.title, link: data.link, imgUrl: data.imgUrl, success: ok, fail: fail });
  });
})();
