/* /voice: startRecord / stopRecord (or the 60 s limit) → playVoice → uploadVoice →
 * POST /voice with the serverId → the list reloads with the new note. While a note is
 * 处理中 (its MP3 is being made), the page asks for itself again and swaps that note in. */
(function () {
  "use strict";
  var site = window.wxsite;
  var start = document.getElementById("rec-start");
  var stop = document.getElementById("rec-stop");
  var play = document.getElementById("rec-play");
  var upload = document.getElementById("rec-upload");
  var status = document.getElementById("rec-status");
  var timer = document.getElementById("rec-timer");
  var list = document.getElementById("voice-list");
  var LIMIT = 60;
  var localId = null;
  var startedAt = 0;
  var ticking = null;

  function say(text) { status.textContent = text; }
  function clock(seconds) {
    seconds = Math.min(LIMIT, Math.max(0, Math.floor(seconds)));
    return Math.floor(seconds / 60) + ":" + ("0" + (seconds % 60)).slice(-2);
  }
  function tick() {
    timer.textContent = clock((Date.now() - startedAt) / 1000) + " / " + clock(LIMIT);
  }
  function recording(on) {
    document.body.classList.toggle("recording", on);
    start.hidden = on;
    stop.hidden = !on;
    if (on) {
      startedAt = Date.now();
      timer.hidden = false;
      tick();
      ticking = window.setInterval(tick, 250);
    } else if (ticking) {
      window.clearInterval(ticking);
      ticking = null;
      // What stays is the take's length.
      timer.textContent = clock((Date.now() - startedAt) / 1000);
    }
  }
  /* One primary button at a time: 开始录音, then 上传 (with 试听 and 重新录音 beside it). */
  function idle(retake) {
    start.textContent = retake ? "重新录音" : "开始录音";
    start.classList.toggle("btn-primary", !retake);
    start.classList.toggle("btn-default", retake);
  }
  function recorded(id) {
    localId = id;
    recording(false);
    idle(true);
    play.hidden = false;
    upload.hidden = false;
    say("录好了，可以试听或上传");
  }

  site.ready(function () {
    wx.onVoiceRecordEnd({ complete: function (res) { recorded(res.localId); say("已到 60 秒，自动停止。可以试听或上传"); } });
    wx.onVoicePlayEnd({ success: function () { play.textContent = "试听"; } });
  });

  start.addEventListener("click", function () {
    wx.startRecord({
      success: function () {
        localId = null;
        play.hidden = true;
        play.textContent = "试听";
        upload.hidden = true;
        recording(true);
        say("正在录音…");
      },
      fail: function (res) { say("无法录音：" + res.errMsg); },
      cancel: function () { say("你拒绝了录音权限"); }
    });
  });

  stop.addEventListener("click", function () {
    wx.stopRecord({
      success: function (res) { recorded(res.localId); },
      fail: function (res) { recording(false); say("停止录音失败：" + res.errMsg); }
    });
  });

  play.addEventListener("click", function () {
    if (!localId) { return; }
    wx.playVoice({ localId: localId });
    play.textContent = "播放中…";
  });

  upload.addEventListener("click", function () {
    if (!localId) { return; }
    upload.disabled = true;
    start.disabled = true;
    say("正在上传…");
    wx.uploadVoice({
      localId: localId,
      isShowProgressTips: 0,
      success: function (res) {
        site.postJSON(start.dataset.postUrl, { server_id: res.serverId }).then(function (data) {
          if (data.item) {
            say("已保存");
            window.location.reload();
          } else {
            upload.disabled = false;
            start.disabled = false;
            say("保存失败：" + (data.message || "请重试"));
          }
        });
      },
      fail: function (res) { upload.disabled = false; start.disabled = false; say("上传失败：" + res.errMsg); }
    });
  });

  /* 处理中: ask for this page again every few seconds (for up to five minutes) and replace
   * each note that is ready; notes already playable are left alone (a player keeps
   * playing). No inline script may do this (CSP), hence here. */
  var polls = 0;
  function refresh() {
    var waiting = list.querySelectorAll(".voice-item [data-processing]");
    if (!waiting.length || polls++ > 100) { return; }
    fetch(list.dataset.pageUrl, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : ""; })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        Array.prototype.forEach.call(waiting, function (badge) {
          var item = badge.closest(".voice-item");
          var next = fresh.querySelector('.voice-item[data-id="' + item.dataset.id + '"]');
          if (next && !next.querySelector("[data-processing]")) {
            item.replaceWith(document.importNode(next, true));
          }
        });
      }, function () { /* offline for a moment: the next round asks again */ })
      .then(function () { window.setTimeout(refresh, 3000); });
  }
  if (list) { window.setTimeout(refresh, 3000); }
})();
