/* /upload: chooseImage → previews (getLocalImgData) → uploadImage one at a time →
 * POST /upload with the serverIds → per-item results in the gallery. */
(function () {
  "use strict";
  var site = window.wxsite;
  var choose = document.getElementById("choose");
  var picked = document.getElementById("picked");
  var sendArea = document.getElementById("send-area");
  var send = document.getElementById("send");
  var progress = document.getElementById("progress");
  var results = document.getElementById("results");
  var gallery = document.getElementById("gallery");
  var localIds = [];

  function say(text) { progress.hidden = false; progress.textContent = text; }

  function call(api, args) {
    return new Promise(function (resolve, reject) {
      args = args || {};
      args.success = resolve;
      args.fail = reject;
      args.cancel = function () { reject({ errMsg: api + ":cancel" }); };
      wx[api](args);
    });
  }

  function preview(localId) {
    var item = document.createElement("div");
    item.className = "grid-item";
    var img = document.createElement("img");
    img.alt = "待上传的照片";
    item.appendChild(img);
    picked.appendChild(item);
    // iOS WKWebView cannot show a localId as an <img> source: ask for the data.
    return call("getLocalImgData", { localId: localId }).then(function (res) {
      var data = res.localData || "";
      img.src = data.indexOf("data:") === 0 ? data : "data:image/jpeg;base64," + data;
    }, function () { img.alt = "无法预览"; });
  }

  choose.addEventListener("click", function () {
    call("chooseImage", { count: 9, sizeType: ["original", "compressed"], sourceType: ["album", "camera"] })
      .then(function (res) {
        localIds = res.localIds || [];
        picked.textContent = "";
        picked.hidden = localIds.length === 0;
        results.hidden = true;
        sendArea.hidden = localIds.length === 0;
        send.textContent = "上传 " + localIds.length + " 张";
        progress.hidden = true;
        return localIds.reduce(function (chain, id) {
          return chain.then(function () { return preview(id); });
        }, Promise.resolve());
      }, function (res) {
        if (String(res && res.errMsg).indexOf("cancel") < 0) { say("选择照片失败：" + (res && res.errMsg)); }
      });
  });

  send.addEventListener("click", function () {
    send.disabled = true;
    choose.disabled = true;
    var serverIds = [];
    // WeChat rejects parallel uploads: strictly one after another.
    localIds.reduce(function (chain, localId, i) {
      return chain.then(function () {
        say("正在上传 " + (i + 1) + "/" + localIds.length + "…");
        return call("uploadImage", { localId: localId, isShowProgressTips: 0 }).then(function (res) {
          serverIds.push(res.serverId);
        });
      });
    }, Promise.resolve()).then(function () {
      say("正在保存…");
      return site.postJSON(choose.dataset.postUrl, { server_ids: serverIds });
    }).then(function (data) {
      if (!data.items) { throw { errMsg: data.message || "保存失败，请重试" }; }
      show(data.items);
    }).catch(function (err) {
      say("上传失败：" + ((err && (err.errMsg || err.message)) || "请重试"));
    }).then(function () {
      send.disabled = false;
      choose.disabled = false;
    });
  });

  function show(items) {
    var ok = items.filter(function (i) { return i.status !== "error"; }).length;
    say("完成：" + ok + " 张已保存" + (ok < items.length ? "，" + (items.length - ok) + " 张失败" : ""));
    results.textContent = "";
    results.hidden = false;
    items.forEach(function (item, n) {
      var row = document.createElement("div");
      row.className = "cell result " + (item.status === "error" ? "result-error" : "result-ok");
      row.textContent = "第 " + (n + 1) + " 张：" + (item.status === "error" ? item.message :
        item.status === "duplicate" ? "已在相册中" : "已保存（" + Math.round(item.size / 1024) + " KB）");
      results.appendChild(row);
      if (item.status === "ok") { addToGallery(item); }
    });
    picked.hidden = true;
    sendArea.hidden = true;
    localIds = [];
  }

  function addToGallery(item) {
    var empty = document.getElementById("gallery-empty");
    if (empty) { empty.remove(); }
    var cell = document.createElement("div");
    cell.className = "grid-item";
    cell.dataset.id = item.id;
    var link = document.createElement("a");
    link.href = item.url;
    var img = document.createElement("img");
    img.src = item.url;
    img.alt = "照片 " + item.id;
    link.appendChild(img);
    cell.appendChild(link);
    gallery.insertBefore(cell, gallery.firstChild);
    var count = document.getElementById("gallery-count");
    count.textContent = String(Number(count.textContent) + 1);
  }
})();
