/* wxsite: configure the WeChat JS-SDK from the page's signed #wx-config, explain failures
 * in plain words, and run the page's features only once wx.ready has fired. */
(function () {
  "use strict";
  var queue = [];
  var state = { ready: false, error: null, retrying: false };

  function banner(text) {
    var el = document.getElementById("wx-banner");
    if (!el) {
      el = document.createElement("div");
      el.id = "wx-banner";
      el.className = "banner";
      el.setAttribute("role", "alert");
      var main = document.querySelector("main") || document.body;
      main.insertBefore(el, main.firstChild);
    }
    el.textContent = text;
    el.hidden = false;
  }

  function explain(errMsg) {
    var msg = String(errMsg || "");
    if (msg.indexOf("invalid signature") >= 0) {
      return "签名无效：页面地址与签名不一致。请检查公众号后台的「JS接口安全域名」，" +
        "以及反向代理 / 隧道设置（WX_PROXY_HOPS）是否让网站看到了浏览器中的地址。";
    }
    if (msg.indexOf("invalid url domain") >= 0) {
      return "当前域名未登记为「JS接口安全域名」，请在公众号后台添加。";
    }
    if (msg.indexOf("permission denied") >= 0) {
      return "公众号没有使用该接口的权限。";
    }
    return "微信接口初始化失败（" + msg + "），请刷新重试。";
  }

  window.wxsite = {
    state: state,
    /* Run fn once the JS-SDK is ready (immediately if it already is). */
    ready: function (fn) {
      if (state.ready) { fn(); } else { queue.push(fn); }
    },
    banner: banner,
    explain: explain,
    /* POST JSON to this site with the page's CSRF token. */
    postJSON: function (url, body) {
      var meta = document.querySelector('meta[name="csrf-token"]');
      return fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          "Accept": "application/json",
          "X-CSRFToken": meta ? meta.content : ""
        },
        body: JSON.stringify(body)
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          data._status = response.status;
          return data;
        });
      }, function () {
        return { _status: 0, message: "网络连接失败，请检查网络后重试" };
      });
    }
  };

  var el = document.getElementById("wx-config");
  if (!el) { return; }
  if (!window.wx) {
    banner("微信 JS-SDK 未能加载，请在微信中打开本页或稍后重试。");
    return;
  }
  var cfg = JSON.parse(el.textContent);
  var retried = false;

  function configure(c) {
    wx.config({
      debug: false,
      appId: c.appId,
      timestamp: c.timestamp,
      nonceStr: c.nonceStr,
      signature: c.signature,
      jsApiList: c.jsApiList,
      /* Open tags (wx-open-launch-weapp …) are granted here, beside jsApiList. */
      openTagList: c.openTagList || []
    });
  }

  function fail(res) {
    state.error = res;
    state.ready = false;
    document.body.classList.add("wx-error");
    banner(explain(res && res.errMsg));
    Array.prototype.forEach.call(document.querySelectorAll("[data-wx-status]"), function (el) {
      el.textContent = "微信功能暂不可用";
    });
  }

  /* A signature WeChat refuses although the site signed this very URL means the site's
   * jsapi_ticket is no longer honoured (WeChat dropped it early, or the emulator was
   * restarted). Tell the site, which re-checks its shared ticket, and retry once with
   * the config it answers; a second failure is shown. */
  function retry(res) {
    retried = true;
    state.retrying = true;
    window.wxsite.postJSON(document.body.dataset.jssdkReport, {
      url: location.href.split("#")[0],
      config: cfg
    }).then(function (data) {
      state.retrying = false;
      if (data._status === 200 && data.retry && data.config) {
        cfg = data.config;
        state.error = null;
        configure(cfg);
      } else {
        fail(res);
      }
    });
  }

  configure(cfg);
  wx.ready(function () {
    if (state.error || state.retrying) { return; }
    state.ready = true;
    document.body.classList.remove("wx-error");
    document.body.classList.add("wx-ready");
    Array.prototype.forEach.call(document.querySelectorAll("[data-wx-feature]"), function (b) {
      b.disabled = false;
    });
    queue.splice(0).forEach(function (fn) { fn(); });
  });
  wx.error(function (res) {
    if (!retried && String(res && res.errMsg).indexOf("invalid signature") >= 0) {
      retry(res);
      return;
    }
    fail(res);
  });
})();
