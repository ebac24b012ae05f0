/* /upload: chooseImage → previews (getLocalImgData) → uploadImage one at a time →
 * POST /upload with the serverIds → per-item results in the gallery. A tap on a photo
 * opens WeChat's viewer (previewImage), or the page's own when the JS-SDK is not ready. */
(function () {
  "use strict";
  var site = window.wxsite;
  var choose = document.getElementById("choose");
  var picked = document.getElementById("picked");
  var sendArea = document.getElementById("send-area");
  var send = document.getElementById("send");
  var progressArea = document.getElementById("progress-area");
  var progress = document.getElementById("progress");
  var bar = document.getElementById("progress-bar");
  var results = document.getElementById("results");
  var gallery = document.getElementById("gallery");
  var empty = document.getElementById("gallery-empty");
  var viewer = document.getElementById("viewer");
  var viewerImg = document.getElementById("viewer-img");
  var localIds = [];

  /* Words under the bar; done/total fills it (no numbers: the bar is left as it is). */
  function say(text, done, total) {
    progressArea.hidden = false;
    progress.textContent = text;
    if (typeof done === "number") {
      bar.hidden = false;
      bar.max = total;
      bar.value = done;
    }
  }
  function sayOnly(text) { say(text); bar.hidden = true; }

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
        progressArea.hidden = true;
        return localIds.reduce(function (chain, id) {
          return chain.then(function () { return preview(id); });
        }, Promise.resolve());
      }, function (res) {
        if (String(res && res.errMsg).indexOf("cancel") < 0) { sayOnly("选择照片失败：" + (res && res.errMsg)); }
      });
  });

  send.addEventListener("click", function () {
    send.disabled = true;
    choose.disabled = true;
    var serverIds = [];
    var total = localIds.length + 1; // the last step is the site saving them
    // WeChat rejects parallel uploads: strictly one after another.
    localIds.reduce(function (chain, localId, i) {
      return chain.then(function () {
        say("正在上传 " + (i + 1) + "/" + localIds.length + "…", i, total);
        return call("uploadImage", { localId: localId, isShowProgressTips: 0 }).then(function (res) {
          serverIds.push(res.serverId);
        });
      });
    }, Promise.resolve()).then(function () {
      say("正在保存…", localIds.length, total);
      return site.postJSON(choose.dataset.postUrl, { server_ids: serverIds });
    }).then(function (data) {
      if (!data.items) { throw { errMsg: data.message || "保存失败，请重试" }; }
      bar.value = bar.max;
      show(data.items);
    }).catch(function (err) {
      sayOnly("上传失败：" + ((err && (err.errMsg || err.message)) || "请重试"));
    }).then(function () {
      send.disabled = false;
      choose.disabled = false;
    });
  });

  function show(items) {
    var count = function (status) { return items.filter(function (i) { return i.status === status; }).length; };
    var saved = count("ok");
    var dup = count("duplicate");
    var failed = count("error");
    var parts = [];
    if (saved || (!dup && !failed)) { parts.push(saved + " 张已保存"); }
    if (dup) { parts.push(dup + " 张已在相册中"); }
    if (failed) { parts.push(failed + " 张失败"); }
    say("完成：" + parts.join("，"));
    results.textContent = "";
    results.hidden = false;
    items.forEach(function (item, n) {
      var row = document.createElement("div");
      row.className = "cell result " + (item.status === "error" ? "result-error" : "result-ok");
      row.textContent = "第 " + (n + 1) + " 张：" + (item.status === "error" ? item.message :
        item.status === "duplicate" ? "已在相册中，未重复保存" : "已保存（" + Math.round(item.size / 1024) + " KB）");
      results.appendChild(row);
      if (item.status === "ok") { addToGallery(item); }
    });
    picked.hidden = true;
    sendArea.hidden = true;
    localIds = [];
  }

  function addToGallery(item) {
    empty.hidden = true;
    gallery.hidden = false;
    var cell = document.createElement("div");
    cell.className = "grid-item";
    cell.dataset.id = item.id;
    var link = document.createElement("a");
    link.className = "grid-preview";
    link.href = item.url;
    var img = document.createElement("img");
    img.src = item.url;
    img.alt = "照片 " + item.id;
    link.appendChild(img);
    cell.appendChild(link);
    // The same form the page renders, so a new photo can be deleted (after asking) at once.
    var form = document.createElement("form");
    form.className = "grid-delete";
    form.method = "post";
    form.action = item.delete_url;
    form.dataset.confirm = "删除这张照片？删除后不能恢复。";
    form.dataset.confirmOk = "删除";
    var token = document.createElement("input");
    token.type = "hidden";
    token.name = "csrf_token";
    token.value = gallery.dataset.csrf;
    var button = document.createElement("button");
    button.type = "submit";
    button.setAttribute("aria-label", "删除");
    button.textContent = "×";
    form.appendChild(token);
    form.appendChild(button);
    cell.appendChild(form);
    gallery.insertBefore(cell, gallery.firstChild);
    var counter = document.getElementById("gallery-count");
    counter.textContent = String(Number(counter.textContent) + 1);
  }

  /* A tap previews in place: WeChat's own viewer (swipe through the album, tap to return),
   * else the page's viewer with a 返回相册 button; never a bare image with no way back. */
  function absolute(href) { return new URL(href, window.location.href).href; }
  function openViewer(href) {
    viewerImg.src = href;
    viewer.hidden = false;
    document.body.classList.add("viewing");
  }
  function closeViewer() {
    viewer.hidden = true;
    viewerImg.removeAttribute("src");
    document.body.classList.remove("viewing");
  }
  gallery.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a.grid-preview") : null;
    if (!link) { return; }
    event.preventDefault();
    if (site.state.ready && window.wx && wx.previewImage) {
      var urls = Array.prototype.map.call(gallery.querySelectorAll("a.grid-preview"), function (a) {
        return absolute(a.getAttribute("href"));
      });
      wx.previewImage({ current: absolute(link.getAttribute("href")), urls: urls });
    } else {
      openViewer(link.getAttribute("href"));
    }
  });
  viewer.addEventListener("click", closeViewer);
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !viewer.hidden) { closeViewer(); }
  });
})();
