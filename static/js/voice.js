/* /voice: startRecord / stopRecord (or the 60 s limit) → playVoice → uploadVoice →
 * POST /voice with the serverId → the list reloads with the new note. */
(function () {
  "use strict";
  var site = window.wxsite;
  var start = document.getElementById("rec-start");
  var stop = document.getElementById("rec-stop");
  var play = document.getElementById("rec-play");
  var upload = document.getElementById("rec-upload");
  var status = document.getElementById("rec-status");
  var localId = null;

  function say(text) { status.textContent = text; }
  function recording(on) {
    document.body.classList.toggle("recording", on);
    start.hidden = on;
    stop.hidden = !on;
  }
  function recorded(id) {
    localId = id;
    recording(false);
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
      success: function () { localId = null; play.hidden = true; upload.hidden = true; recording(true); say("正在录音…"); },
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
            say("保存失败：" + (data.message || "请重试"));
          }
        });
      },
      fail: function (res) { upload.disabled = false; say("上传失败：" + res.errMsg); }
    });
  });
})();
