/* /share: hand the page's share data to WeChat for chats and Moments. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("share-data").textContent);
  var status = document.getElementById("share-status");
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
